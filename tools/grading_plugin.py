"""A pytest plugin for tools/grade.py: records each task test's marks and outcome.

Loaded with `-p tools.grading_plugin`; writes JSON to the file named by MINISUM_GRADE_REPORT.
A test is graded under the task mark nearest to it; its other task marks are the earlier
tasks it also runs (every gradient test runs backward(), task 1.1).
"""
import json
import os

_marks, _outcomes, _messages, _needs_engine = {}, {}, {}, set()


def pytest_collection_modifyitems(items):
    for item in items:
        tasks = [str(m.args[0]) for m in item.iter_markers("task")]
        if tasks:
            _marks[item.nodeid] = tasks  # nearest first
            if item.get_closest_marker("needs_engine"):
                _needs_engine.add(item.nodeid)


def pytest_runtest_logreport(report):
    # a failure in setup, call or teardown fails the test; a pass needs the call to pass
    if report.failed:
        _outcomes[report.nodeid] = "failed"
        crash = getattr(report.longrepr, "reprcrash", None)
        _messages.setdefault(report.nodeid, crash.message if crash else str(report.longrepr).splitlines()[-1])
    elif report.nodeid not in _outcomes and (report.when == "call" or report.skipped):
        _outcomes[report.nodeid] = "skipped" if report.skipped else "passed"


def pytest_sessionfinish(session):
    path = os.environ.get("MINISUM_GRADE_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump([{"test": t, "task": tasks[0], "all_tasks": tasks, "outcome": _outcomes.get(t, "not run"),
                        "message": _messages.get(t, ""), "needs_engine": t in _needs_engine} for t, tasks in _marks.items()], f)
