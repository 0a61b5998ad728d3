"""The course tools: task markers, the handout generator and the autograder (docs/teaching.md).

These build handouts in temporary folders and grade them in fresh pytest processes, so
they take a minute or two: one grading run of the task tests per task.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tools.grade import run_task_tests, score  # noqa: E402
from tools.make_handout import build  # noqa: E402
from tools.task_markers import MarkerError, collect_tasks, find_blocks  # noqa: E402

TASKS = collect_tasks(ROOT)


@pytest.mark.parametrize("source, problem", [
    ("# BEGIN TASK 1.1 a\n# BEGIN TASK 1.2 b\n# END TASK 1.2\n# END TASK 1.1\n", "begins inside TASK 1.1"),
    ("# BEGIN TASK 1.1 a\nx = 1\n", "has no END"),
    ("x = 1\n# END TASK 1.1\n", "without its BEGIN"),
    ("# BEGIN TASK 1.1 a\n# END TASK 1.2\n", "without its BEGIN"),
])
def test_malformed_markers_are_reported_with_file_and_line(tmp_path, source, problem):
    path = tmp_path / "bad.py"
    path.write_text(source)
    with pytest.raises(MarkerError, match=problem) as err:
        find_blocks(path)
    assert "bad.py:" in str(err.value)


def test_two_titles_for_one_task_are_an_error(tmp_path):
    (tmp_path / "minisum").mkdir()
    (tmp_path / "minisum" / "a.py").write_text("# BEGIN TASK 1.1 one\n# END TASK 1.1\n")
    (tmp_path / "minisum" / "b.py").write_text("# BEGIN TASK 1.1 two\n# END TASK 1.1\n")
    with pytest.raises(MarkerError, match="two titles"):
        collect_tasks(tmp_path)


@pytest.fixture(scope="module")
def full_handout(tmp_path_factory):
    return build(tmp_path_factory.mktemp("handout") / "minisum-handout")


def test_the_full_handout_imports_and_stubs_every_task(full_handout):
    done = subprocess.run([sys.executable, "-c", "import minisum, minisum.models, minisum.training"],
                          cwd=full_handout, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    stubs = "".join(p.read_text() for p in (full_handout / "minisum").rglob("*.py"))
    for task_id, (title, blocks) in TASKS.items():
        assert stubs.count(f'raise NotImplementedError("Task {task_id}: {title}")') == len(blocks)


def test_every_task_test_fails_in_the_full_handout(full_handout):
    results = run_task_tests(full_handout, seed=0)
    assert results and all(r["outcome"] == "failed" for r in results)
    assert all("NotImplementedError: Task" in r["message"] for r in results)


def test_tests_of_no_task_pass_in_the_full_handout(full_handout):
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-m", "not task and not needs_engine", "--ignore=tests/test_handout.py", "tests"],
                          cwd=full_handout, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]


def test_the_reference_passes_every_task_test_and_every_task_has_tests(tmp_path):
    report = tmp_path / "report.json"
    subprocess.run([sys.executable, str(ROOT / "tools" / "grade.py"), "--json", str(report), "--seed", "3"],
                   check=True, capture_output=True)
    graded = json.loads(report.read_text())
    assert graded["seed"] == 3 and graded["total"] > 0 and graded["passed"] == graded["total"]
    assert len(TASKS) >= 10 and set(graded["tasks"]) == set(TASKS)
    assert all(row["total"] > 0 for row in graded["tasks"].values()), "every task needs a test graded under it"


@pytest.mark.parametrize("task_id", list(TASKS))
def test_removing_one_task_fails_exactly_its_tests(tmp_path, task_id):
    handout = build(tmp_path / "handout", [task_id])
    results = run_task_tests(handout, seed=0)
    failed = {r["test"] for r in results if r["outcome"] == "failed"}
    marked = {r["test"] for r in results if task_id in r["all_tasks"]}
    # Tests that need the whole engine (training a model) fail whichever task is missing.
    whole_engine = {r["test"] for r in results if r["needs_engine"]}
    assert marked <= failed
    assert failed - whole_engine == marked - whole_engine
    table = score(handout, results)
    assert table[task_id]["passed"] == 0
