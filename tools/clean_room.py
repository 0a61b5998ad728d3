"""Clean rooms: a task's tests run in a read-only copy of the teacher's tree, in a process of its own.

tools/grade.py takes a snapshot of the teacher's tree once per grading, and for each task writes
the submission's bodies into a fresh copy of it (`clean_room`) and runs the task's tests there
(`run_tests`): a session of its own, a time limit, a memory limit (tools/grading_plugin.py sets
it), one BLAS thread, the settings on stdin and the results back over a pipe whose lines carry a
nonce. When the process ends, its session and every process it started, even one that left the
session, are killed.
"""
import contextlib
import json
import os
import re
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tools.course import TEACHER_ONLY

ROOT = Path(__file__).resolve().parents[1]
TEACHER_PARTS = ("minisum", "tests", "tools", "pytest.ini")  # what a clean room copies
NOT_COPIED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
MEMORY_BYTES = 4 * 2 ** 30  # address space of a task's process: the reference needs well under 2 GiB
# a clean room's own sitecustomize: a Python that a test starts there gets the run-time wall too
SITECUSTOMIZE = "from tools.block_wall import install_from_environment\n\ninstall_from_environment()\n"
_LIVE, _LIVE_LOCK = set(), threading.Lock()  # the task processes running, the caller's children: no orphans


def task_test_files(room, task_id=None):
    """The test files in `room` that may grade `task_id` (or any task): collecting the others would
    only cost time. The plugin then keeps exactly the tests graded under the task."""
    found = []
    for path in sorted((room / "tests").glob("test_*.py")):
        rel, text = str(path.relative_to(room)), path.read_text()
        graded_here = re.search(r"\btask(_marks)?\(", text) and (task_id is None or f'"{task_id}"' in text)
        if rel not in TEACHER_ONLY and graded_here:
            found.append(rel)
    return found


def clean_room(where, files, teacher=ROOT):
    """A fresh copy of the teacher's tree (or its snapshot) under `where`, with `files` (rel -> text)
    written over it, read-only."""
    copy_teacher(teacher, where)
    make_writable(where)
    for rel, text in {**files, "sitecustomize.py": SITECUSTOMIZE}.items():
        if (where / rel).exists():
            (where / rel).chmod(0o644)
        (where / rel).write_text(text)
    make_read_only(where)
    return where


def run_tests(room, task_id, seed, timeout, collect_only=False, blocks=None, budget=None, whole_messages=False):
    """Run the tests of `task_id` (None: of every task) as they stand in `room`, or only count them;
    (events, returncode or "timeout", stderr). blocks: {file in room: [(first, last line)]} of the
    graded task's bodies, watched at run time (tools/grading_plugin.py); budget: seconds its cost
    probe may take; whole_messages: failures as pytest words them (a copy grading itself), not
    only in words the block cannot choose."""
    room = Path(room).resolve()
    env = task_environment(room)
    # no third-party pytest plugins: only the teacher's tests and this grader's plugin run
    env.update(MINISUM_TEST_SEED=str(seed), PYTHONHASHSEED="0", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    command = [sys.executable, "-s", "-m", "pytest", "-q", "-p", "tools.grading_plugin", "-p", "no:cacheprovider",
               "-m", "task", *(["--collect-only"] if collect_only else []), *task_test_files(room, task_id)]
    read_end, write_end = os.pipe()
    nonce = secrets.token_hex(16)
    settings = {"task": task_id, "fd": write_end, "nonce": nonce, "memory": MEMORY_BYTES,
                "whole_messages": whole_messages, "blocks": {str(path): ranges for path, ranges in (blocks or {}).items()},
                "budget": None if collect_only else budget}
    with tempfile.TemporaryFile("w+") as err:
        try:
            with _LIVE_LOCK:  # known before the sweep of another task's end can see it as an orphan
                process = subprocess.Popen(command, cwd=room, env=env, stdin=subprocess.PIPE,
                                           stdout=subprocess.DEVNULL, stderr=err, pass_fds=(write_end,),
                                           start_new_session=True)
                _LIVE.add(process.pid)
        finally:
            os.close(write_end)
        try:
            process.stdin.write(json.dumps(settings).encode())
            process.stdin.close()
        except BrokenPipeError:
            pass
        try:
            returncode, output = _collect(process, read_end, timeout)
        finally:
            os.close(read_end)
            _end_everything(process)
        err.seek(0)
        stderr = err.read()
    events = []
    for line in output.decode(errors="replace").splitlines():
        mark, _, text = line.partition(" ")
        if mark != nonce:
            continue  # not the plugin's: a line without its nonce
        try:
            events.append(json.loads(text))
        except ValueError:
            break  # a line cut short by a killed process
    return events, returncode, stderr


def task_environment(room):
    """The environment of a process that runs code of `room`: none of the caller's MINISUM_ or
    PYTHON variables, and one BLAS thread (tasks run side by side, and BLAS threads that spin
    on a busy machine make a 2 ms backward take 300 ms: the cost probes time the code, not that)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINISUM_", "PYTHON"))}
    env.update(PYTHONPATH=str(room), PYTHONDONTWRITEBYTECODE="1",
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def _collect(process, read_end, timeout):
    """(returncode or "timeout", bytes the plugin wrote) of a task process, read as it writes them."""
    deadline, chunks = time.monotonic() + timeout, []
    os.set_blocking(read_end, False)
    with selectors.DefaultSelector() as selector:
        selector.register(read_end, selectors.EVENT_READ)
        while process.poll() is None and time.monotonic() < deadline:
            if selector.select(timeout=min(0.05, max(0, deadline - time.monotonic()))):
                chunks.append(_read_available(read_end))
    returncode = process.poll()
    chunks.append(_read_available(read_end))  # what it wrote before it ended
    return ("timeout" if returncode is None else returncode), b"".join(chunks)


def _read_available(fd):
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _end_everything(process):
    """Kill the task process, its session and any process it started that escaped it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the task's own children too
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()
    with _LIVE_LOCK:
        _LIVE.discard(process.pid)
    _kill_orphans()


def _kill_orphans():
    """Kill the processes that became this grader's children by being orphaned (a daemon that left
    its task's session); only when the grader is their subreaper (Linux), else they went to init.
    The task processes running and the children this process had before grading are left alone."""
    with _LIVE_LOCK:
        for _ in range(100):
            orphans = [pid for pid in _children() if pid not in _LIVE]
            if not orphans:
                return
            for pid in orphans:
                try:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                except (ProcessLookupError, ChildProcessError, PermissionError):
                    pass


def _children():
    me, found = str(os.getpid()), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == me:
            found.append(int(stat.parent.name))
    return found


@contextlib.contextmanager
def adopting_orphans():
    """While grading, orphaned descendants become this process's children (Linux prctl
    PR_SET_CHILD_SUBREAPER), so that a double-forked daemon of a task is found and killed;
    elsewhere, nothing. The children this process already has are not the grader's to kill."""
    try:
        import ctypes
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        prctl = None
    with _LIVE_LOCK:
        before = set(_children())
        _LIVE.update(before)
    if prctl:
        prctl(36, 1, 0, 0, 0)
    try:
        yield
    finally:
        _kill_orphans()
        if prctl:
            prctl(36, 0, 0, 0, 0)
        with _LIVE_LOCK:
            _LIVE.difference_update(before)


def snapshot(where):
    """A read-only copy of the teacher's tree (the parts a clean room needs), taken once per grading:
    every clean room is copied from it, so nothing a task does to it reaches the next."""
    copy_teacher(ROOT, where)
    make_read_only(where)
    return where


def copy_teacher(teacher, where):
    """Copy the parts of the teacher's tree (or of its snapshot) that a clean room needs to `where`."""
    where.mkdir(parents=True)
    for part in TEACHER_PARTS:
        source = teacher / part
        if source.is_dir():
            shutil.copytree(source, where / part, ignore=NOT_COPIED)
        elif source.exists():
            shutil.copy2(source, where / part)


def make_read_only(root):
    """Every file and folder under `root` read-only, so that a task cannot change the tree it is graded in."""
    for path in [*root.rglob("*"), root]:
        path.chmod(0o555 if path.is_dir() else 0o444)


def make_writable(root):
    """The folders under `root` writable again, so that the grader can remove them."""
    for path in [root, *root.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
