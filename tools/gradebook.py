"""The gradebook: a report printed per task, a CSV row per student, Gradescope's results.json."""
import csv
from pathlib import Path


def print_report(graded, unreleased=None):
    """The report as a table, each task's first message whole (the second cut short); `unreleased`:
    {task: title} of the tasks a weekly handout has not released, listed without points."""
    print(f"{'task':5} {'title':48} {'status':8} {'tests':>7} {'points':>13}")
    for t, r in graded["tasks"].items():
        print(f"{t:5} {r['title'][:48]:48} {r['status']:8} {r['tests_passed']:>3}/{r['tests_total']:<3} "
              f"{r['score']:>6g} / {r['max_score']:<4g}")
        for n, message in enumerate(r["messages"][:2]):
            print(f"        {message if n == 0 else message[:150]}")
    for t, title in (unreleased or {}).items():
        print(f"{t:5} {title[:48]:48} not released")
    print(f"{'total':76} {graded['score']:>6g} / {graded['max_score']:<4g}")


def write_csv(path, reports, errors, task_ids):
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["submission", "score", "max_score", "error", *task_ids])
        for submission, graded in reports.items():
            out.writerow([Path(submission).name, graded["score"], graded["max_score"], errors.get(submission, "")] +
                         [graded["tasks"][t]["score"] for t in task_ids])


def gradescope(graded):
    """The report in Gradescope's autograder format (results.json)."""
    return {"score": graded["score"], "output": f"{graded['score']:g} / {graded['max_score']:g}",
            "tests": [{"name": f"Task {t}: {r['title']}", "number": t, "score": r["score"],
                       "max_score": r["max_score"], "status": "passed" if r["status"] == "passed" else "failed",
                       "output": "\n".join([f"status: {r['status']}, {r['tests_passed']}/{r['tests_total']} tests"]
                                           + r["messages"])}
                      for t, r in graded["tasks"].items()]}
