"""The autograder: grade submissions task by task in clean rooms, and write a gradebook.

    python tools/grade.py                                    # grade this copy
    python tools/grade.py SUBMISSION --seed 7 --json report.json
    python tools/grade.py subs/* --seed 7 --csv grades.csv   # a whole class
    python tools/grade.py SUBMISSION --tasks 2.1,2.2         # only these tasks (or --upto 2)

From a submission the grader takes only the bodies of its task blocks (`# BEGIN TASK x.y` ...
`# END TASK x.y`). For each task it writes that task's bodies into a fresh, read-only copy of a
snapshot of the teacher's tree taken when grading starts (this one: tests, conftest, gradcheck,
the other tasks' solutions, this grader) and runs the task's tests there in a process and
session of its own, with a time limit, a memory limit and the run-time checks of
tools/grading_plugin.py; every process it started is killed when it ends. Nothing else of the
submission is read, imported or run, and the grader itself writes the report. A body that is
missing, does not parse or breaks a rule (tools/rules.py) scores 0 and never runs. `--seed`
(the teacher's secret, mixed with each submission's folder name) changes the tests' random
values, some of their shapes and gradcheck's upstream gradient (MINISUM_TEST_SEED); without it
a seed is drawn and printed; a given one is never printed nor reported. In a weekly handout the
tasks not released yet are left out unless asked for. Points come from tools/course.py.
Exit status: 0 graded, 1 a submission could not be graded, 2 bad arguments, 130 interrupted.
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tools.course import POINTS, assignment  # noqa: E402
from tools.gradebook import gradescope, print_report, write_csv  # noqa: E402
from tools.clean_room import adopting_orphans, clean_room, make_writable, run_tests, snapshot, task_environment  # noqa: E402
from tools.cost_probes import FLOOR_S, PROBES, SLOWER  # noqa: E402
from tools.submission import prepare, read_bodies, teacher_tasks  # noqa: E402
from tools.task_markers import MarkerError, scan_blocks, task_order, unreleased_tasks  # noqa: E402

MAX_MESSAGES = 5
BUDGET_S = 120  # seconds of all of a submission's task runs (the reference's: ~10): a loop in every task stops here


class GradingError(Exception):
    """A submission (or the teacher's tree) that cannot be graded; the message says why."""


@dataclass
class TaskResult:
    task: str
    title: str
    max_score: float
    status: str = "failed"  # passed failed timeout crashed missing rule (and ok: to be run)
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


# ----- judging one task ----------------------------------------------------------------------------
def judge(result, events, returncode, timeout):
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
    if rules:
        result.status, result.messages = "rule", sorted(set(rules)) + result.messages
    elif returncode == "timeout":
        result.status, result.messages = "timeout", [f"stopped after {timeout:g} s{during}"] + result.messages
    elif not collected and any(e["event"] == "done" for e in events):
        result.status, result.messages = "failed", [f"this copy has no test graded under TASK {result.task}"]
    elif not any(e["event"] == "done" for e in events) or returncode not in (0, 1):
        why = {2: "interrupted", 3: "pytest's internal error", 4: "pytest's usage error"}.get(returncode, "")
        why = f"killed by signal {-returncode}" if isinstance(returncode, int) and returncode < 0 else why
        result.status = "crashed"
        result.messages = [f"the test process ended before its tests did{during}: exit status {returncode}"
                           + (f" ({why})" if why else "")] + result.messages
    else:
        result.status = "passed" if result.tests_passed == result.tests_total else "failed"


# ----- grading -------------------------------------------------------------------------------------
def grade_many(submissions, seed, task_ids, timeout=60, jobs=None, budget=BUDGET_S):
    """({submission: report}, {submission: why it could not be graded}); every (submission, task)
    runs in its own clean room, `jobs` at a time, with at most `budget` seconds of task runs per
    submission. task_ids: the tasks, or {submission: its tasks}. Each submission is graded at its
    own seed, drawn from `seed` and its folder's name (student_seed)."""
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
    runs.sort(key=lambda run: task_order(run[1].task), reverse=True)
    spent = {s: Budget(budget) for s in submissions}
    with tempfile.TemporaryDirectory(prefix="minisum-grade-") as work, adopting_orphans():
        teacher = snapshot(Path(work) / "teacher")
        references = reference_seconds(teacher, {r.task for _, r, _ in runs if r.status == "ok"})

        def grade(n_run):
            n, (submission, result, files) = n_run
            grade_task(result, files, Path(work) / str(n), student_seed(seed, submission), timeout,
                       teacher, references.get(result.task), spent[submission], is_own_copy(submission))
        with concurrent.futures.ThreadPoolExecutor(jobs or _cores()) as pool:
            list(pool.map(grade, enumerate(runs)))
        make_writable(Path(work))
    return {s: report(r) for s, r in results.items()}, errors


class Budget:
    """The seconds of task runs a submission has left."""
    def __init__(self, seconds):
        self.left, self.lock = seconds, threading.Lock()

    def spend(self, seconds):
        with self.lock:
            self.left -= seconds


def is_own_copy(submission):
    """True when `submission` is the copy this grader runs from: a student checking their own work."""
    return Path(submission).resolve() == ROOT


def student_seed(seed, submission):
    """The seed a submission is graded at: the teacher's secret `seed` mixed with the submission's
    folder name, so that no two students share (or can pass on) their hidden variation. Seed 0
    stays 0 (the tests everyone sees), and a copy grading itself keeps its seed (a student's
    self-check, which `pytest --seed` replays)."""
    if not seed or is_own_copy(submission):
        return seed
    digest = hashlib.sha256(f"{seed}:{Path(submission).resolve().name}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % (2 ** 31 - 1) + 1


def reference_seconds(teacher, task_ids):
    """{task: seconds} of the teacher's reference on each task's cost probe (tools/cost_probes.py),
    timed in a process like the tasks' own; {} when it cannot be timed."""
    wanted = sorted(t for t in task_ids if t in PROBES)
    if not wanted:
        return {}
    try:
        done = subprocess.run([sys.executable, "-s", "-m", "tools.cost_probes", *wanted], cwd=teacher,
                              env=task_environment(teacher),
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        return json.loads(done.stdout)
    except (subprocess.TimeoutExpired, ValueError):
        return {}


def prepare_submission(submission, tasks, task_ids, runs):
    """{task: TaskResult} for one submission, with (submission, result, files) of the runs it needs
    appended to `runs`."""
    if not submission.is_dir():
        raise GradingError(f"{submission} is not a folder")
    if not any((submission / b.path.relative_to(ROOT)).is_file() for t in task_ids for b in tasks[t][1]):
        raise GradingError(f"{submission} has none of the files with task blocks (minisum/...): is it a handout?")
    bodies = read_bodies(submission, tasks)
    results = {}
    for t in task_ids:
        results[t] = TaskResult(t, tasks[t][0], POINTS[t], "ok")
        status, messages, files = prepare(t, *bodies[t], tasks)
        if status != "ok":
            results[t].status, results[t].messages = status, messages
        runs.append((str(submission), results[t], files))
    return results


def grade_task(result, files, room, seed, timeout, teacher, reference, budget, own_copy):
    """Run one task's tests in a fresh clean room copied from `teacher` and fill `result`, within
    the submission's `budget`. A stubbed task (missing, rule) is only counted: none of its code
    runs. reference: seconds of the teacher's cost probe, or None; own_copy: the grader grades the
    copy it runs from (a student's self-check), whose failures it reports as pytest words them."""
    stubbed = result.status in ("missing", "rule")
    if not stubbed:
        result.status = "failed"
    limit = timeout if stubbed else max(0.0, min(timeout, budget.left))
    if limit <= 0:
        result.status, result.messages = "timeout", ["the submission's time for all of its tasks ran out first"]
        return
    try:
        clean_room(room, files, teacher)
        started = time.monotonic()
        blocks = {} if stubbed else block_lines(room, files, result.task)
        cost = None if reference is None else max(SLOWER * reference, FLOOR_S)
        events, returncode, _ = run_tests(room, result.task, seed, limit, collect_only=stubbed, blocks=blocks,
                                          budget=cost, whole_messages=own_copy)  # stderr stays out: block code writes it
        judge(result, events, returncode, limit)
        if not stubbed:
            budget.spend(time.monotonic() - started)
    finally:
        make_writable(room)
        shutil.rmtree(room, ignore_errors=True)


def block_lines(room, files, task_id):
    """{file in room: [(first, last line of a body)]} of `task_id`'s blocks in the files written."""
    lines = {}
    for rel, text in files.items():
        blocks, _, _ = scan_blocks(rel, text.splitlines())
        ranges = [(b.begin + 2, b.end) for b in blocks if b.task == task_id]
        if ranges:
            lines[str((Path(room) / rel).resolve())] = ranges
    return lines


def report(results):
    """A submission's report: what its student may see (no seed: it is the teacher's secret)."""
    tasks = {t: r.as_dict() for t, r in results.items()}
    return {"score": round(sum(r["score"] for r in tasks.values()), 2),
            "max_score": sum(r["max_score"] for r in tasks.values()), "tasks": tasks}


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
    parser.add_argument("--seed", type=int, help="the teacher's secret seed of the hidden variation, mixed with each "
                        "submission's folder name; never printed nor reported (default: drawn and printed)")
    parser.add_argument("--tasks", help="comma-separated task ids to grade (default: all)")
    parser.add_argument("--upto", type=int, metavar="N", help="grade assignments 1 to N only")
    parser.add_argument("--timeout", type=float, default=60, help="seconds per task (default 60)")
    parser.add_argument("--budget", type=float, default=BUDGET_S,
                        help=f"seconds of task runs per submission (default {BUDGET_S})")
    parser.add_argument("--jobs", type=int, help="tasks graded at once (default: the number of cores)")
    parser.add_argument("--json", help="write the report here (with several submissions: a folder of reports)")
    parser.add_argument("--csv", help="write one row per submission here")
    parser.add_argument("--gradescope", metavar="RESULTS_JSON", help="write Gradescope's results.json here")
    args = parser.parse_args(argv)
    submissions = args.submissions or [str(ROOT)]
    seed = args.seed if args.seed is not None else random.randrange(1, 2 ** 31)
    try:
        tasks = teacher_tasks()
        # in a weekly handout, the tasks not released yet are not graded unless asked for
        unreleased = set() if args.tasks or args.upto is not None else unreleased_tasks(ROOT)
        task_ids = [t for t in choose_tasks(tasks, args.tasks, args.upto) if t not in unreleased]
        if args.gradescope and len(submissions) > 1:
            raise GradingError("--gradescope writes one submission's results.json: give one submission")
        if args.timeout <= 0 or args.budget <= 0 or (args.jobs is not None and args.jobs < 1):
            raise GradingError("--timeout, --budget and --jobs must be positive")
        if seed < 0:  # NumPy's generators take no negative seed
            raise GradingError(f"--seed {seed}: a seed is a whole number from 0")
        names = [Path(s).resolve().name for s in submissions]
        twins = sorted({n for n in names if names.count(n) > 1})
        if twins:  # one seed, one report file, one CSV name for two students
            raise GradingError(f"several submissions are folders named {', '.join(twins)}: rename them apart")
        # the files written after grading: a wrong path is said now, not after grading a class
        many_reports = args.json and len(submissions) > 1
        for option, path in [("--json", None if many_reports else args.json), ("--csv", args.csv),
                             ("--gradescope", args.gradescope)]:
            if path and (Path(path).is_dir() or not Path(path).resolve().parent.is_dir()):
                raise GradingError(f"{option} {path}: not a file in an existing folder")
        if many_reports and Path(args.json).exists() and not Path(args.json).is_dir():
            raise GradingError(f"--json {args.json}: with several submissions, a folder (this is a file)")
    except (MarkerError, GradingError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # as Ctrl-C: the clean rooms and their processes go
    try:
        reports, errors = grade_many(submissions, seed, task_ids, args.timeout, args.jobs, args.budget)
    except KeyboardInterrupt:  # the clean rooms and their processes are gone already
        print("interrupted: nothing graded, no report written", file=sys.stderr)
        return 130
    for submission, graded in reports.items():
        if len(submissions) > 1:
            print(f"\n== {submission}")
        if submission in errors:  # one line, not a table of the same reason per task (the CSV row has it too)
            print(f"error: {errors[submission]}", file=sys.stderr)
            continue
        print_report(graded, {t: tasks[t][0] for t in sorted(unreleased, key=task_order)})
    # a drawn seed is the student's to replay; a given one is the teacher's secret
    said = f"seed {seed}" if args.seed is None else "the given seed"
    seconds = time.perf_counter() - start
    print(f"graded {len(submissions) - len(errors)} of {len(submissions)} submission(s) in {seconds:.1f} s ({said})")
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
