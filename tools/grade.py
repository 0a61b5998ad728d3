"""The autograder: grade submissions task by task in clean rooms, and write a gradebook.

    python tools/grade.py                                    # grade this copy
    python tools/grade.py SUBMISSION --seed 7 --json report.json
    python tools/grade.py subs/* --seed 7 --csv grades.csv   # a whole class
    python tools/grade.py SUBMISSION --tasks 2.1,2.2         # only these tasks (or --upto 2)

From a submission the grader takes only the bodies of its task blocks (`# BEGIN TASK x.y` ...
`# END TASK x.y`). For each task it writes that task's bodies into a fresh copy of the
teacher's tree (this one: tests, conftest, gradcheck, the other tasks' solutions, this
grader) and runs the task's tests there in a process of its own, with a time limit. Nothing
else of the submission is read, imported or run, and the grader itself writes the report.
A body that is missing, does not parse or breaks a rule (tools/rules.py) scores 0 and never
runs. `--seed` changes the tests' random values, some of their shapes and gradcheck's upstream
gradient (MINISUM_TEST_SEED); without it a seed is drawn and printed. Points come from
tools/course.py. Exit status: 0 graded, 1 a submission could not be graded, 2 bad arguments.
"""
import argparse
import concurrent.futures
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tools.course import POINTS, TEACHER_ONLY, assignment  # noqa: E402
from tools.gradebook import gradescope, print_report, write_csv  # noqa: E402
from tools.submission import prepare, read_bodies, teacher_tasks  # noqa: E402
from tools.task_markers import MarkerError, task_order  # noqa: E402

TEACHER_PARTS = ("minisum", "tests", "tools", "pytest.ini")  # what a clean room copies
NOT_COPIED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
MAX_MESSAGES = 5


class GradingError(Exception):
    """A submission (or the teacher's tree) that cannot be graded; the message says why."""


@dataclass
class TaskResult:
    task: str
    title: str
    max_score: float
    status: str = "failed"  # passed failed timeout crashed missing rule
    tests_passed: int = 0
    tests_total: int = 0
    weight_passed: float = 0  # a test's weight: its share of the task's points (tests/conftest.py: task)
    weight_total: float = 0
    messages: list = field(default_factory=list)

    @property
    def score(self):
        if self.status not in ("passed", "failed") or not self.weight_total:
            return 0.0
        return round(self.max_score * self.weight_passed / self.weight_total, 2)

    def as_dict(self):
        return {"title": self.title, "score": self.score, "max_score": self.max_score, "status": self.status,
                "tests_passed": self.tests_passed, "tests_total": self.tests_total,
                "messages": self.messages[:MAX_MESSAGES]}


# ----- running one task ---------------------------------------------------------------------------
def task_test_files(room, task_id=None):
    """The test files in `room` that may grade `task_id` (or any task): collecting the others would
    only cost time. The plugin then keeps exactly the tests graded under the task."""
    return sorted(str(p.relative_to(room)) for p in (room / "tests").glob("test_*.py")
                  if str(p.relative_to(room)) not in TEACHER_ONLY and re.search(r"\btask(_marks)?\(", p.read_text())
                  and (task_id is None or f'"{task_id}"' in p.read_text()))


def clean_room(where, files):
    """A fresh copy of the teacher's tree under `where`, with `files` (rel -> text) written over it."""
    where.mkdir(parents=True)
    for part in TEACHER_PARTS:
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, where / part, ignore=NOT_COPIED)
        elif source.exists():
            shutil.copy2(source, where / part)
    for rel, text in files.items():
        (where / rel).write_text(text)
    return where


def run_tests(room, task_id, seed, timeout, collect_only=False):
    """Run the tests of `task_id` (None: of every task) as they stand in `room`, or only count them;
    (events, returncode or "timeout", stderr)."""
    with tempfile.TemporaryDirectory(prefix="minisum-grade-run-") as tmp:
        return _run_tests(Path(room), task_id, seed, timeout, Path(tmp) / "results.jsonl", collect_only)


def _run_tests(room, task_id, seed, timeout, results, collect_only):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINISUM_", "PYTHON"))}
    # no third-party pytest plugins: only the teacher's tests and this grader's plugin run
    env.update(MINISUM_TEST_SEED=str(seed), MINISUM_GRADE_RESULTS=str(results), PYTHONPATH=str(room),
               PYTHONDONTWRITEBYTECODE="1", PYTHONHASHSEED="0", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    if task_id:
        env["MINISUM_GRADE_TASK"] = task_id
    command = [sys.executable, "-s", "-m", "pytest", "-q", "-p", "tools.grading_plugin", "-p", "no:cacheprovider",
               "-m", "task", *(["--collect-only"] if collect_only else []), *task_test_files(room, task_id)]
    with open(results.with_suffix(".stderr"), "w+") as err:
        process = subprocess.Popen(command, cwd=room, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=err, start_new_session=True)
        try:
            returncode = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            returncode = "timeout"
        finally:
            try:
                os.killpg(process.pid, signal.SIGKILL)  # the task's own children too
            except ProcessLookupError:
                pass
            process.wait()
        err.seek(0)
        stderr = err.read()
    events = []
    if results.exists():
        for line in results.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                break  # a line cut short by a killed process
    return events, returncode, stderr


def judge(result, events, returncode, stderr, timeout):
    """Fill `result` from one task process's events."""
    collected = next((e["tests"] for e in events if e["event"] == "collected"), [])
    outcomes = {}
    for e in events:
        if e["event"] == "outcome" and outcomes.get(e["test"], ("passed",))[0] != "failed":
            outcomes[e["test"]] = (e["outcome"], e["message"])
    result.tests_total = len(collected)
    result.weight_total = sum(t["weight"] for t in collected)
    if result.status in ("missing", "rule"):
        return  # stubbed: the run only counted its tests
    passed = [t for t in collected if outcomes.get(t["test"], ("",))[0] == "passed"]
    result.tests_passed, result.weight_passed = len(passed), sum(t["weight"] for t in passed)
    result.messages += [f"{t['test']}: {outcomes[t['test']][1]}" for t in collected
                        if outcomes.get(t["test"], ("",))[0] == "failed"]
    running = [e["test"] for e in events if e["event"] == "start"]
    during = f" during {running[-1]}" if running else ""
    rules = [e["message"] for e in events if e["event"] == "rule"]
    if returncode == "timeout":
        result.status, result.messages = "timeout", [f"stopped after {timeout:g} s{during}"] + result.messages
    elif rules:
        result.status, result.messages = "rule", sorted(set(rules)) + result.messages
    elif not collected and any(e["event"] == "done" for e in events):
        result.status, result.messages = "failed", [f"this copy has no test graded under TASK {result.task}"]
    elif not any(e["event"] == "done" for e in events) or returncode not in (0, 1):
        why = {2: "interrupted", 3: "pytest's internal error", 4: "pytest's usage error"}.get(returncode, "")
        last = stderr.strip().splitlines()[-1:] or [f"exit status {returncode} {why}".strip()]
        result.status = "crashed"
        result.messages = [f"the test process ended before its tests did{during}: {last[0][:200]}"] + result.messages
    else:
        result.status = "passed" if result.tests_passed == result.tests_total else "failed"


# ----- grading -------------------------------------------------------------------------------------
def grade_many(submissions, seed, task_ids, timeout=60, jobs=None):
    """({submission: report}, {submission: why it could not be graded}); every (submission, task)
    runs in its own clean room, `jobs` at a time. task_ids: the tasks, or {submission: its tasks}."""
    tasks = teacher_tasks()
    results, errors, runs = {}, {}, []
    for submission in submissions:
        chosen = task_ids[submission] if isinstance(task_ids, dict) else task_ids
        try:
            results[submission] = prepare_submission(Path(submission), tasks, chosen, runs)
        except GradingError as err:
            errors[submission] = str(err)
            results[submission] = {t: TaskResult(t, tasks[t][0], POINTS[t], "missing", messages=[str(err)])
                                   for t in chosen}
    # the slowest tasks (training, attention) first, so that no core waits on one at the end
    runs.sort(key=lambda run: task_order(run[0].task), reverse=True)
    with tempfile.TemporaryDirectory(prefix="minisum-grade-") as work:
        with concurrent.futures.ThreadPoolExecutor(jobs or _cores()) as pool:
            list(pool.map(lambda n_run: grade_task(*n_run[1], Path(work) / str(n_run[0]), seed, timeout),
                          enumerate(runs)))
    return {s: report(r, seed) for s, r in results.items()}, errors


def prepare_submission(submission, tasks, task_ids, runs):
    """{task: TaskResult} for one submission, with (result, files) of the runs it needs appended to `runs`."""
    if not submission.is_dir():
        raise GradingError(f"{submission} is not a folder")
    if not any((submission / b.path.relative_to(ROOT)).is_file() for t in task_ids for b in tasks[t][1]):
        raise GradingError(f"{submission} has none of the files with task blocks (minisum/...): is it a handout?")
    bodies = read_bodies(submission, tasks)
    results = {}
    for t in task_ids:
        results[t] = TaskResult(t, tasks[t][0], POINTS[t])
        status, messages, files = prepare(t, *bodies[t], tasks)
        if status != "ok":
            results[t].status, results[t].messages = status, messages
        runs.append((results[t], files))
    return results


def grade_task(result, files, room, seed, timeout):
    """Run one task's tests in a fresh clean room and fill `result`. A stubbed task (missing, rule)
    is only counted: none of its code runs."""
    try:
        clean_room(room, files)
        judge(result, *run_tests(room, result.task, seed, timeout, collect_only=result.status in ("missing", "rule")),
              timeout)
    finally:
        shutil.rmtree(room, ignore_errors=True)


def report(results, seed):
    tasks = {t: r.as_dict() for t, r in results.items()}
    return {"score": round(sum(r["score"] for r in tasks.values()), 2),
            "max_score": sum(r["max_score"] for r in tasks.values()), "seed": seed, "tasks": tasks}


def _cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def choose_tasks(tasks, ids, upto):
    if ids and upto is not None:
        raise GradingError("give --tasks or --upto, not both")
    if upto is not None:
        chosen = [t for t in tasks if assignment(t) <= upto]
        if not chosen:
            raise GradingError(f"--upto {upto} selects no task: the first assignment is 1")
        return chosen
    if not ids:
        return list(tasks)
    wanted = [t.strip() for t in ids.split(",") if t.strip()]
    unknown = [t for t in wanted if t not in tasks]
    if unknown:
        raise GradingError(f"unknown task(s) {', '.join(unknown)}: the tasks are {', '.join(tasks)}")
    return [t for t in tasks if t in wanted]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("submissions", nargs="*", metavar="SUBMISSION",
                        help="the copies to grade (default: this one, the reference)")
    parser.add_argument("--seed", type=int, help="seed of the hidden variation (default: drawn and printed)")
    parser.add_argument("--tasks", help="comma-separated task ids to grade (default: all)")
    parser.add_argument("--upto", type=int, metavar="N", help="grade assignments 1 to N only")
    parser.add_argument("--timeout", type=float, default=60, help="seconds per task (default 60)")
    parser.add_argument("--jobs", type=int, help="tasks graded at once (default: the number of cores)")
    parser.add_argument("--json", help="write the report here (with several submissions: a folder of reports)")
    parser.add_argument("--csv", help="write one row per submission here")
    parser.add_argument("--gradescope", metavar="RESULTS_JSON", help="write Gradescope's results.json here")
    args = parser.parse_args(argv)
    submissions = args.submissions or [str(ROOT)]
    seed = args.seed if args.seed is not None else random.randrange(1, 2 ** 31)
    try:
        tasks = teacher_tasks()
        task_ids = choose_tasks(tasks, args.tasks, args.upto)
        if args.gradescope and len(submissions) > 1:
            raise GradingError("--gradescope writes one submission's results.json: give one submission")
        if args.timeout <= 0 or (args.jobs is not None and args.jobs < 1):
            raise GradingError("--timeout and --jobs must be positive")
    except (MarkerError, GradingError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    reports, errors = grade_many(submissions, seed, task_ids, args.timeout, args.jobs)
    for submission, graded in reports.items():
        if len(submissions) > 1:
            print(f"\n== {submission}")
        if submission in errors:
            print(f"error: {errors[submission]}", file=sys.stderr)
        print_report(graded)
    print(f"graded {len(submissions)} submission(s) in {time.perf_counter() - start:.1f} s (seed {seed})")
    if args.json:
        if len(submissions) == 1:
            Path(args.json).write_text(json.dumps(reports[submissions[0]], indent=2))
        else:
            Path(args.json).mkdir(parents=True, exist_ok=True)
            for submission, graded in reports.items():
                (Path(args.json) / f"{Path(submission).name}.json").write_text(json.dumps(graded, indent=2))
    if args.csv:
        write_csv(args.csv, reports, errors, task_ids)
    if args.gradescope:
        Path(args.gradescope).write_text(json.dumps(gradescope(reports[submissions[0]]), indent=2))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
