"""The autograder: run the task tests of a (student's) copy and print a score per task.

    python tools/grade.py                       # grade this copy
    python tools/grade.py path/to/handout --seed 7 --json report.json

Runs pytest on the tests marked with a task (`@task("X.Y")`) in a fresh process inside
the copy, so the copy's own minisum is the one tested. `--seed` changes the random inputs
of the tests (MINISUM_TEST_SEED), so code tuned to the default inputs fails.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.task_markers import collect_tasks  # noqa: E402


def run_task_tests(root, seed, tasks=None):
    """[{test, task, outcome}] for the task tests under root (all tasks, or only `tasks`)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        env = dict(os.environ, MINISUM_TEST_SEED=str(seed), MINISUM_GRADE_REPORT=str(report),
                   PYTHONPATH=str(root), PYTHONDONTWRITEBYTECODE="1")
        command = [sys.executable, "-m", "pytest", "-q", "-m", "task", "-p", "tools.grading_plugin",
                   "-p", "no:cacheprovider", "tests"]
        subprocess.run(command, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not report.exists():
            raise SystemExit(f"error: pytest could not run in {root} (try `python -m pytest -m task` there)")
        results = json.loads(report.read_text())
    return [r for r in results if tasks is None or r["task"] in tasks]


def score(root, results):
    """task id -> {title, passed, total, failed}, in course order."""
    titles = {task_id: title for task_id, (title, _) in collect_tasks(root).items()}
    table = {t: {"title": titles[t], "passed": 0, "total": 0, "failed": []} for t in titles}
    for r in results:
        row = table.setdefault(r["task"], {"title": "?", "passed": 0, "total": 0, "failed": []})
        row["total"] += 1
        if r["outcome"] == "passed":
            row["passed"] += 1
        else:
            row["failed"].append(r["test"])
    return table


def print_table(table):
    print(f"{'task':6} {'title':52} {'passed':>9}")
    for task_id, row in table.items():
        print(f"{task_id:6} {row['title'][:52]:52} {row['passed']:>4} / {row['total']:<3}")
    passed, total = sum(r["passed"] for r in table.values()), sum(r["total"] for r in table.values())
    print(f"{'total':59} {passed:>4} / {total:<3}")
    return passed, total


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", nargs="?", default=str(Path(__file__).resolve().parents[1]),
                        help="the copy to grade (default: this one)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the tests' random inputs")
    parser.add_argument("--tasks", help="comma-separated task ids (default: all)")
    parser.add_argument("--json", help="write the report here (for a learning-management system)")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    start = time.perf_counter()
    results = run_task_tests(root, args.seed, args.tasks.split(",") if args.tasks else None)
    table = score(root, results)
    if args.tasks:
        table = {t: row for t, row in table.items() if t in args.tasks.split(",")}
    passed, total = print_table(table)
    print(f"graded in {time.perf_counter() - start:.1f} s (seed {args.seed})")
    if args.json:
        Path(args.json).write_text(json.dumps({"root": str(root), "seed": args.seed, "passed": passed,
                                               "total": total, "tasks": table}, indent=2))


if __name__ == "__main__":
    main()
