"""The run-time wall around task blocks: a Python audit hook (PEP 578) that refuses every audited
action (open, import of a new module, exec / compile, fork, processes, signals, sockets, ctypes,
...) while a frame running a block's lines is on the stack.

The grading plugin installs it in each task's process (tools/grading_plugin.py), and so does the
`sitecustomize.py` the grader writes into a clean room, in any Python a test starts there (it
finds the blocks in MINISUM_GRADE_BLOCKS, which the plugin sets for them). A hook cannot be
removed once installed.
"""
import json
import os
import re
import sys

HARMLESS_EVENTS = {"sys._getframe", "sys._getframemodulename", "builtins.id"}  # the hook's own, and id()
ENVIRONMENT = "MINISUM_GRADE_BLOCKS"


class BlockEscape(RuntimeError):
    """Block code asked for something outside the computation (a file, a process, code to run)."""


def relative(path):
    """A path in a clean room as the student knows it: minisum/ops/cumsum.py."""
    return re.sub(r"^.*?/(minisum|tests)/", r"\1/", path)


def block_line(blocks, path, line):
    """'file:line' when `line` of the file `path` is in a block ({file: [(first, last)]}), else None."""
    ranges = blocks.get(path)
    if ranges and any(first <= line <= last for first, last in ranges):
        return f"{relative(path)}:{line}"
    return None


def install(blocks, report=None):
    """Refuse every audited action under a block's frame: call report(event, 'file:line') first
    (once per event and place), then raise BlockEscape."""
    reported, busy = set(), []

    def hook(event, args):
        if event in HARMLESS_EVENTS or busy:  # busy: what the hook does itself is not watched
            return
        busy.append(event)
        try:
            frame, where = sys._getframe().f_back, None  # the caller, if any Python frame asked
            while frame is not None and where is None:
                where = block_line(blocks, frame.f_code.co_filename, frame.f_lineno)
                frame = frame.f_back
            if where and report and (event, where) not in reported:
                reported.add((event, where))
                report(event, where)
        finally:
            busy.pop()
        if where:
            raise BlockEscape(f"{event} is not allowed in a task block")

    sys.addaudithook(hook)


def install_from_environment():
    """In a Python a test started inside a clean room: the wall around the blocks the plugin named."""
    if os.environ.get(ENVIRONMENT):
        install({path: [tuple(r) for r in ranges] for path, ranges in json.loads(os.environ[ENVIRONMENT]).items()})
