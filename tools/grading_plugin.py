"""A pytest plugin for tools/grade.py: runs the tests of one task and streams their outcomes.

Loaded with `-p tools.grading_plugin` inside a clean room (a copy of the teacher's tree with
one task's blocks from the submission). It reads two environment variables and removes them
before any test runs, so the code under test cannot find the results file:
    MINISUM_GRADE_RESULTS  file to append one JSON line per event to
    MINISUM_GRADE_TASK     keep only the tests graded under this task (default: every task test)
A test is graded under the task mark nearest to it; its other marks name the earlier tasks
whose code it also runs. The plugin also fails any backward() that calls its own op's
forward more than once: a gradient by finite differences rather than by its formula.
"""
import functools
import importlib
import json
import os
import pkgutil

RESULTS = os.environ.pop("MINISUM_GRADE_RESULTS", None)
GRADED_TASK = os.environ.pop("MINISUM_GRADE_TASK", None)
MESSAGE_CHARS = 300  # a failure message is cut here: enough to act on, too short to carry files out

_stream = None
_backwards = []  # one [op class, its own forwards called so far] per backward() running
_reported = set()  # op classes already reported for finite differences


def _write(event, **fields):
    if _stream:
        _stream.write(json.dumps({"event": event, **fields}) + "\n")
        _stream.flush()


def pytest_configure(config):
    global _stream
    if RESULTS:
        _stream = open(RESULTS, "a")
    _watch_forwards_inside_backwards()


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


def pytest_runtest_logreport(report):
    # a failure in setup, call or teardown fails the test; a pass needs the call to pass
    if report.failed:
        crash = getattr(report.longrepr, "reprcrash", None)
        message = " ".join((crash.message if crash else str(report.longrepr).strip().splitlines()[-1]).split())
        _write("outcome", test=report.nodeid, outcome="failed", message=message[:MESSAGE_CHARS])
    elif report.skipped:
        _write("outcome", test=report.nodeid, outcome="skipped", message="")
    elif report.when == "call":
        _write("outcome", test=report.nodeid, outcome="passed", message="")


def pytest_sessionfinish(session):
    _write("done")


# ----- finite differences --------------------------------------------------------------------
class FiniteDifferences(AssertionError):
    """A backward computed its gradient by calling its own forward again and again."""


def _watch_forwards_inside_backwards():
    """Wrap every op's forward and backward (and the `*_forward` helpers of its module) so that a
    backward calling its own op's forward twice or more raises FiniteDifferences. Once is allowed:
    reusing the forward (a reversed cumsum for cumsum's backward, a recomputed softmax)."""
    import minisum.ops
    from minisum.autograd import Function

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
            if cls not in _reported:
                _reported.add(cls)
                _write("rule", message=message)
            raise FiniteDifferences(message)
        return result
    return tracked


def _counted_forward(belongs_to_op, forward):
    @functools.wraps(forward)
    def counted(*args, **kwargs):
        if _backwards and belongs_to_op(_backwards[-1][0]):
            _backwards[-1][1] += 1
        return forward(*args, **kwargs)
    return counted
