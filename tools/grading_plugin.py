"""A pytest plugin for tools/grade.py: records each test's task marker and outcome.

Loaded with `-p tools.grading_plugin`; writes JSON to the file named by MINISUM_GRADE_REPORT.
"""
import json
import os

_tasks, _outcomes = {}, {}


def pytest_collection_modifyitems(items):
    for item in items:
        marker = item.get_closest_marker("task")
        if marker:
            _tasks[item.nodeid] = str(marker.args[0])


def pytest_runtest_logreport(report):
    # a failure in setup, call or teardown fails the test; a pass needs the call to pass
    if report.failed:
        _outcomes[report.nodeid] = "failed"
    elif report.when == "call" and report.nodeid not in _outcomes:
        _outcomes[report.nodeid] = "skipped" if report.skipped else "passed"
    elif report.skipped and report.nodeid not in _outcomes:
        _outcomes[report.nodeid] = "skipped"


def pytest_sessionfinish(session):
    path = os.environ.get("MINISUM_GRADE_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump([{"test": t, "task": task, "outcome": _outcomes.get(t, "not run")}
                       for t, task in _tasks.items()], f)
