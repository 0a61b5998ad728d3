"""A pytest plugin for tools/grade.py: runs the tests of one task and streams their outcomes.

Loaded with `-p tools.grading_plugin` inside a clean room (a copy of the teacher's tree with
one task's blocks from the submission). Its settings come as one JSON object on stdin, read
and gone before any test imports the submission (no environment variable, no file):
    task     keep only the tests graded under this task (null: every task test)
    fd, nonce  the pipe to write one line per event to, each line starting with the nonce
    blocks   {file: [[first line, last line], ...]} of the graded task's block bodies
    memory   bytes of address space the process may use
    budget   seconds the task's cost probe may take (tools/cost_probes.py), or null
    whole_messages  failures as pytest words them, uncut (a copy grading itself: no secret to keep)
A test is graded under the task mark nearest to it; its other marks name the earlier tasks
whose code it also runs.

While block code runs it is watched (each failure a `rule` event):
- an audit hook (tools/block_wall.py; it cannot be removed) refuses exec / compile, open, the
  import of a module not yet imported, processes, signals, sockets, ctypes and every other
  audited action while a frame of a block's lines is on the stack, here and in any Python a
  test starts;
- a backward that calls its own op's forward twice or more (finite differences), creates a
  Function (builds a graph) or calls backward() (autograd inside a backward);
- the task's cost probe taking more than SLOWER times the reference's time.
A failure's message is the test's own text: an exception that passed through block code is
reported by its type and place only, never by its text (unless whole_messages).
"""
import functools
import importlib
import json
import os
import pkgutil
import re
import resource
import signal

import pytest

from tools import block_wall


def _read_settings():
    """The grader's settings from stdin (empty when run by hand), then stdin is /dev/null."""
    chunks = []
    try:
        if not os.isatty(0):
            while chunk := os.read(0, 65536):
                chunks.append(chunk)
    except OSError:
        return {}
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    try:
        return json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        return {}


_settings = _read_settings()
GRADED_TASK = _settings.get("task")
MESSAGE_CHARS = 300  # a failure message is cut here: enough to act on, too short to carry files out
_fd, _nonce = _settings.get("fd"), _settings.get("nonce", "")
_blocks = {path: [tuple(r) for r in ranges] for path, ranges in _settings.get("blocks", {}).items()}
_budget = _settings.get("budget")
# a copy grading itself (a student's self-check) sees its failures as pytest words them: nobody's secret is in them
_whole_messages = _settings.get("whole_messages", False)
if _fd is not None:
    os.set_inheritable(_fd, False)  # for this process alone, not for the Pythons a test starts
_memory = _settings.get("memory")
if _memory:
    resource.setrlimit(resource.RLIMIT_AS, (_memory, _memory))
del _settings

_backwards = []  # one [op class, its own forwards called so far] per backward() running
_reported = set()  # rule messages already written
_out_of_memory = []  # the tests that failed on a MemoryError


def _write(event, **fields):
    if _fd is not None:
        line = f"{_nonce} {json.dumps({'event': event, **fields})}\n".encode()
        while line:
            line = line[os.write(_fd, line):]


def _rule(message):
    if message not in _reported:
        _reported.add(message)
        _write("rule", message=message)


# ----- the tests ---------------------------------------------------------------------------------
def pytest_configure(config):
    if _blocks:
        _watch_backwards()
        block_wall.install(_blocks, report=lambda event, where: _rule(
            f"TASK {GRADED_TASK} at {where} tried `{event}` (files, imports, processes, signals and code "
            "from strings are out of a block's reach)"))
        os.environ[block_wall.ENVIRONMENT] = json.dumps(_blocks)  # for a Python a test starts


def pytest_collection_modifyitems(session, config, items):
    kept, dropped = [], []
    for item in items:
        tasks = [str(m.args[0]) for m in item.iter_markers("task")]  # nearest first
        graded = tasks and (GRADED_TASK is None or tasks[0] == GRADED_TASK)
        (kept if graded else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    _write("collected", tests=[{"test": item.nodeid, "tasks": [str(m.args[0]) for m in item.iter_markers("task")],
                                "weight": item.get_closest_marker("task").kwargs.get("weight", 1),
                                "needs_engine": item.get_closest_marker("needs_engine") is not None}
                               for item in kept])


def pytest_runtest_logstart(nodeid, location):
    _write("start", test=nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.excinfo is not None:
        report.grading_message = failure_message(call.excinfo.value, call.excinfo.tb)
        if isinstance(call.excinfo.value, MemoryError):
            _out_of_memory.append(item.nodeid)


def pytest_runtest_logreport(report):
    # a failure in setup, call or teardown fails the test; a pass needs the call to pass
    if report.failed:
        message = getattr(report, "grading_message", None) or "failed"
        _write("outcome", test=report.nodeid, outcome="failed", message=message if _whole_messages else message[:MESSAGE_CHARS])
    elif report.skipped:
        _write("outcome", test=report.nodeid, outcome="skipped", message="")
    elif report.when == "call":
        _write("outcome", test=report.nodeid, outcome="passed", message="")


def pytest_sessionfinish(session):
    if _budget is not None and GRADED_TASK:
        _check_cost()
    _write("done")


# ----- messages ------------------------------------------------------------------------------------
QUOTED, QUOTE = re.compile(r"'[^']*'|\"[^\"]*\""), "'...'"
VALUE_LINES = re.compile(r"^\s*(Mismatch at|Max absolute|Max relative|x:|y:|ACTUAL|DESIRED|\[)")


def failure_message(error, tb):
    """The message of a failed test, in words the block cannot choose.

    Through block code: the exception's type and where (its text may be anything the block put
    there). Otherwise: a GradcheckError's own message (its fields), or the test's own line and
    the header of a NumPy comparison (without the arrays), or the engine's message."""
    name = type(error).__name__
    block, test = None, None
    while tb is not None:
        path = tb.tb_frame.f_code.co_filename
        block = block_wall.block_line(_blocks, path, tb.tb_lineno) or block
        if "/tests/" in path:
            test = f"{block_wall.relative(path)}:{tb.tb_lineno}"
        tb = tb.tb_next
    if _whole_messages:
        return f"{name}: {' '.join(str(error).split())}" + (f" (at {test})" if test else "")
    if block:
        return f"{name} raised in the task's code at {block}" + (f" (test line {test})" if test else "")
    if name == "GradcheckError" or not _blocks:
        return f"{name}: {' '.join(str(error).split())}"
    text = str(error)
    if isinstance(error, AssertionError):
        header = [line.strip() for line in text.strip().splitlines() if line.strip()]
        header = [] if header and header[0].startswith("assert ") else header  # pytest's: the values
        kept = []
        for line in header:
            if VALUE_LINES.match(line) or line.startswith("assert "):
                break
            kept.append(line)
        # the test's own words; a quoted string in them may be the repr of something a block returned
        return f"{name} at {test}" + (f": {QUOTED.sub(QUOTE, ' '.join(kept))}" if kept else "")
    text = QUOTED.sub(QUOTE, " ".join(text.split()))  # the engine's own words, likewise
    return f"{name}: {text}" + (f" (at {test})" if test else "")


# ----- shortcuts seen at run time ------------------------------------------------------------------
class Shortcut(AssertionError):
    """A backward computed its gradient by a shortcut: finite differences, a graph, or too slowly."""


def _watch_backwards():
    """Wrap every op's forward and backward (and the `*_forward` helpers of its module), Function
    calls and Tensor.backward, so that a backward calling its own op's forward twice or more,
    building a graph or running autograd raises Shortcut. Calling the forward once is allowed:
    reusing it (a reversed cumsum for cumsum's backward, a recomputed softmax)."""
    import minisum.ops
    from minisum.autograd import Function, Tensor

    modules = [importlib.import_module(f"minisum.ops.{m.name}") for m in pkgutil.iter_modules(minisum.ops.__path__)]
    ops = [cls for cls in _subclasses(Function) if cls.__module__.startswith("minisum.")]
    for cls in ops:
        if "backward" in vars(cls):
            cls.backward = _tracked_backward(cls, vars(cls)["backward"])
        if "forward" in vars(cls):
            cls.forward = _counted_forward(lambda op, cls=cls: op is cls, vars(cls)["forward"])
    for module in modules:
        for name, fn in list(vars(module).items()):
            if name.endswith("_forward") and callable(fn) and getattr(fn, "__module__", None) == module.__name__:
                setattr(module, name, _counted_forward(lambda op, m=module.__name__: op.__module__ == m, fn))
    Function.__call__ = _outside_backwards(Function.__call__, "creates {op} (builds a graph)")
    Tensor.backward = _outside_backwards(Tensor.backward, "calls backward() (autograd inside a backward)")


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _tracked_backward(cls, backward):
    @functools.wraps(backward)
    def tracked(self, *args, **kwargs):
        _backwards.append([cls, 0])
        try:
            result = backward(self, *args, **kwargs)
        finally:
            _, calls = _backwards.pop()
        if calls >= 2:
            message = (f"{cls.__name__}.backward called its own forward {calls} times: a gradient must come "
                       "from its formula, not from finite differences")
            _rule(message)
            raise Shortcut(message)
        return result
    return tracked


def _counted_forward(belongs_to_op, forward):
    @functools.wraps(forward)
    def counted(*args, **kwargs):
        if _backwards and belongs_to_op(_backwards[-1][0]):
            _backwards[-1][1] += 1
        return forward(*args, **kwargs)
    return counted


def _outside_backwards(method, what):
    @functools.wraps(method)
    def checked(self, *args, **kwargs):
        if _backwards:
            message = (f"{_backwards[-1][0].__name__}.backward {what.format(op=type(self).__name__)}: a backward "
                       "works on arrays")
            _rule(message)
            raise Shortcut(message)
        return method(self, *args, **kwargs)
    return checked


# ----- cost --------------------------------------------------------------------------------------------
class TooSlow(BaseException):
    """The cost probe ran past its budget (a BaseException: `except Exception` in a block lets it through;
    a block that catches it anyway has its task fail too, as the probe never returns in time)."""


def _check_cost():
    from tools.cost_probes import PROBES, SLOWER, probe
    if GRADED_TASK not in PROBES:
        return
    what = PROBES[GRADED_TASK][0]
    message = (f"the backward of TASK {GRADED_TASK} took more than {SLOWER}x the reference's time "
               f"({_budget:.2f} s) on {what}: finite differences or a Jacobian, not the formula")

    def stop(signum, frame):
        raise TooSlow

    import numpy as np
    np.ones((512, 512)) @ np.ones((512, 512))  # the BLAS threads start here, not in the timed backward
    signal.signal(signal.SIGALRM, stop)
    for _ in range(2):  # a second try: one run slowed down by a busy machine is no shortcut
        signal.setitimer(signal.ITIMER_REAL, _budget)
        try:
            if probe(GRADED_TASK) <= _budget:  # a block that swallowed TooSlow (a bare except) is late all the same
                return
        except TooSlow:
            continue
        except MemoryError:  # stacked perturbations, a dense Jacobian: out of the 4 GiB at this size only
            if _out_of_memory:
                return  # out of memory at every size (an 8 GiB array): its tests have failed already
            _rule(f"the backward of TASK {GRADED_TASK} ran out of memory ({_memory / 2 ** 30:g} GiB) on {what}, where the reference "
                  "does not: finite differences or a Jacobian, not the formula")
            return
        except Exception:  # noqa: BLE001  a wrong backward: its tests have failed already
            return
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    _rule(message)
