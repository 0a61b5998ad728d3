"""The course tools: task markers, the handout generator and the autograder (docs/teaching.md).

These build handouts in temporary folders and run the task tests in fresh pytest processes,
so they take a minute: one run of the task tests per task. The attacks on the grader are
in test_grading_redteam.py.
"""
import ast
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tools.course import ANSWERS_OUTSIDE_BLOCKS, POINTS, TEACHER_ONLY, assignment  # noqa: E402
from tools.clean_room import run_tests  # noqa: E402
from tools.make_handout import build, tracked_files  # noqa: E402
from tools.rules import check_block  # noqa: E402
from tools.task_markers import MarkerError, collect_tasks, find_blocks, scan_blocks, task_order  # noqa: E402

TASKS = collect_tasks(ROOT)
GRADE = [sys.executable, str(ROOT / "tools" / "grade.py")]


def task_tests(root, seed=0):
    """[{test, tasks, needs_engine, outcome, message}] of every task test as it stands in `root`."""
    events, returncode, stderr = run_tests(root, None, seed, timeout=300)
    assert returncode in (0, 1), stderr[-2000:]
    outcomes = {e["test"]: e for e in events if e["event"] == "outcome" and e["outcome"] != "passed"}
    collected = next(e["tests"] for e in events if e["event"] == "collected")
    return [{**t, "outcome": outcomes.get(t["test"], {"outcome": "passed"})["outcome"],
             "message": outcomes.get(t["test"], {"message": ""})["message"]} for t in collected]


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


def test_every_task_has_points_and_the_reference_keeps_the_rules():
    assert set(POINTS) == set(TASKS) and sum(POINTS.values()) == 100
    for task_id, (_, blocks) in TASKS.items():
        for block in blocks:
            body = "\n".join(block.path.read_text().splitlines()[block.begin + 1:block.end])
            assert check_block(body, task_id) == [], f"{block.path}:{block.begin + 1}"


@pytest.mark.parametrize("body, problem", [
    ("import os", "imports os"),
    ("return torch.tensor(gy)", "uses torch"),
    ("return layer_norm_composite(x, w, b)", "uses layer_norm_composite"),
    ("return numerical_gradient(f, xs, 0, gy, 1e-6)", "uses numerical_gradient"),
    ("np.testing.assert_allclose = print", "assigns to np.testing.assert_allclose"),
    ("return gy.__class__", "uses .__class__"),
    ("global np", "declares np global"),
    ("return LayerNorm().backward(gy)", "uses LayerNorm"),
])
def test_rules_name_what_a_block_may_not_do(body, problem):
    assert any(problem in what for _, what in check_block("        " + body, "2.2"))


def test_rules_allow_the_array_module_and_a_tensor_update():
    body = "xp = get_array_module(gy)\nga = xp.matmul(gy, xp.exp(gy).T)\nfor p in self.params:\n    p.data -= 0.1 * p.grad\nreturn ga"
    assert check_block(body, "1.5") == []


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


def test_the_handout_has_only_tracked_files_and_none_that_answers_a_task(full_handout):
    copied = {str(p.relative_to(full_handout)) for p in full_handout.rglob("*") if p.is_file()}
    assert copied <= set(tracked_files(ROOT))
    for path in [*ANSWERS_OUTSIDE_BLOCKS, *TEACHER_ONLY]:
        assert not any(rel == path or (path.endswith("/") and rel.startswith(path)) for rel in copied), path
    source = (full_handout / "minisum" / "ops" / "cumsum.py").read_text()
    assert "xp.cumsum" not in source  # the GPU branch went with its task


def test_no_line_of_an_answer_is_left_in_the_full_handout(full_handout):
    generic = {"xp = get_array_module(gy)", "for i, p in enumerate(self.params):"}  # found elsewhere too
    answers = {line.split("#")[0].strip() for _, blocks in TASKS.values() for b in blocks
               for line in b.path.read_text().splitlines()[b.begin + 1:b.end]}
    answers = {line for line in answers if len(line) >= 25} - generic
    for path in full_handout.rglob("*.py"):
        text = path.read_text()
        leaked = [line for line in answers if line in text]
        assert not leaked, f"{path.relative_to(full_handout)} holds {leaked[0]!r}: move it into its task's block"


def test_every_task_test_fails_in_the_full_handout(full_handout):
    results = task_tests(full_handout)
    assert results and all(r["outcome"] == "failed" for r in results)
    # the stub's message, raised as it is or caught by a pytest.raises(RuntimeError) that expected another
    assert all(re.search(r"Task \d+\.\d+: ", r["message"]) for r in results), \
        [r for r in results if not re.search(r"Task \d+\.\d+: ", r["message"])][:3]


def test_tests_of_no_task_pass_in_the_full_handout(full_handout):
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-m", "not task and not needs_engine", "tests"],
                          cwd=full_handout, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]


def test_the_weekly_release_solves_no_later_task(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "make_handout.py"), str(tmp_path / "week1"),
                           "--upto", "1"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    source = "".join(p.read_text() for p in (tmp_path / "week1" / "minisum").rglob("*.py"))
    for task_id, (title, blocks) in TASKS.items():
        later = "" if task_id.startswith("1.") else f" (assignment {task_id[0]}, not released yet)"
        assert source.count(f'raise NotImplementedError("Task {task_id}: {title}{later}")') == len(blocks)


def test_the_reference_gets_full_marks_in_the_fixed_report_schema(tmp_path):
    report, results = tmp_path / "report.json", tmp_path / "results.json"
    done = subprocess.run([*GRADE, "--json", str(report), "--seed", "3", "--gradescope", str(results)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    graded = json.loads(report.read_text())
    assert graded["score"] == graded["max_score"] == 100 and "seed" not in graded  # the teacher's secret
    assert list(graded["tasks"]) == list(TASKS)
    for task_id, row in graded["tasks"].items():
        assert set(row) == {"title", "score", "max_score", "status", "tests_passed", "tests_total", "messages"}
        assert row["status"] == "passed" and row["tests_total"] > 0 and row["score"] == POINTS[task_id]
    gradescope = json.loads(results.read_text())
    assert gradescope["score"] == 100 and len(gradescope["tests"]) == len(TASKS)


def test_a_class_is_graded_into_one_csv_row_per_student(full_handout, tmp_path):
    grades = tmp_path / "grades.csv"
    done = subprocess.run([*GRADE, str(full_handout), str(tmp_path / "nobody"), "--tasks", "1.2",
                           "--csv", str(grades), "--seed", "1"], capture_output=True, text=True)
    assert done.returncode == 1  # one submission could not be graded
    assert "error: " in done.stderr and "nobody" in done.stderr
    rows = list(csv.DictReader(grades.open()))
    assert [r["submission"] for r in rows] == [full_handout.name, "nobody"]
    assert rows[0]["1.2"] == "0.0" and rows[0]["error"] == "" and "not a folder" in rows[1]["error"]


def test_a_self_check_shows_failures_as_pytest_words_them_and_a_teachers_grading_does_not(full_handout, tmp_path):
    handout = Path(shutil.copytree(full_handout, tmp_path / "student"))
    arithmetic = handout / "minisum" / "ops" / "arithmetic.py"
    wrong = "    return grad.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True)"
    arithmetic.write_text(re.sub(r'    raise NotImplementedError\("Task 1.2: .*"\)', wrong, arithmetic.read_text()))
    own = run(handout, sys.executable, "tools/grade.py", "--tasks", "1.2", "--seed", "0")
    teachers = subprocess.run([*GRADE, str(handout), "--tasks", "1.2", "--seed", "0"], capture_output=True, text=True)
    assert "failed" in own.stdout and "assert (2, 3, 4) == (3, 4)" in own.stdout, own.stdout
    assert "failed" in teachers.stdout and "assert (" not in teachers.stdout, teachers.stdout


@pytest.mark.parametrize("args, problem", [
    (["--tasks", "9.9"], "unknown task(s) 9.9"),
    (["--upto", "0"], "selects no task"),
    (["--seed", "-1"], "a seed is a whole number from 0"),
    (["--csv", "no-such-folder/grades.csv"], "not a file in an existing folder"),
    ([str(ROOT), str(ROOT / "tests" / "..")], "several submissions are folders named"),  # one seed, one report
])
def test_bad_arguments_are_one_error_line(args, problem):
    done = subprocess.run([*GRADE, *args], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("error: ") and problem in done.stderr


def test_a_grading_stopped_by_sigterm_says_so_and_leaves_no_clean_room(tmp_path):
    grading = subprocess.Popen([*GRADE, "--seed", "1", "--jobs", "1"], env={**os.environ, "TMPDIR": str(tmp_path)},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not list(tmp_path.glob("minisum-grade-*/teacher/tools")):  # grading has begun: the snapshot is there
        assert grading.poll() is None, grading.stderr.read()
        time.sleep(0.05)
    grading.send_signal(signal.SIGTERM)
    out, err = grading.communicate(timeout=120)
    assert grading.returncode == 130 and err == "interrupted: nothing graded, no report written\n", err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", [".", "tests", "..", "a file"])
def test_force_never_removes_this_repository_a_folder_of_it_or_a_file(where, monkeypatch, tmp_path):
    import tools.make_handout
    removed = []
    monkeypatch.setattr(tools.make_handout.shutil, "rmtree", removed.append)  # were it called: nothing lost
    out_dir = ROOT / where if where != "a file" else tmp_path / "a_file"
    out_dir.touch(exist_ok=True)
    with pytest.raises(MarkerError, match="not a folder --force may replace"):
        build(out_dir, force=True)
    assert removed == []


@pytest.mark.parametrize("args, environment, problem", [(["--task", "9.9"], {}, "--task 9.9: no such task"),
                                                        (["--seed", "-1"], {}, "a seed is a whole number from 0"),
                                                        ([], {"MINISUM_TEST_SEED": "x"}, "MINISUM_TEST_SEED 'x'")])
def test_pytest_says_what_is_wrong_with_a_task_or_a_seed_in_one_line(args, environment, problem):
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, "tests/test_optim.py"]
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, **environment}, capture_output=True, text=True)
    assert done.returncode == 4 and done.stderr.startswith("ERROR: ") and problem in done.stderr, done.stderr
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize("task_id", list(TASKS))
def test_removing_one_task_fails_exactly_its_tests(tmp_path, task_id):
    handout = build(tmp_path / "handout", [task_id], leave_out=False)
    results = task_tests(handout)
    failed = {r["test"] for r in results if r["outcome"] == "failed"}
    marked = {r["test"] for r in results if task_id in r["tasks"]}
    # Tests that need the whole engine (training a model) fail whichever task is missing.
    whole_engine = {r["test"] for r in results if r["needs_engine"]}
    assert marked <= failed
    assert failed - whole_engine == marked - whole_engine
    assert any(r["tasks"][0] == task_id for r in results), "every task needs a test graded under it"


# ----- weekly handouts a student can take alone (issue 20) ------------------------------------------
PATH_MENTION = re.compile(r"(?<![\w/.-])((?:[\w-]+/)*[\w-]+\.(?:py|md))\b")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
NOT_PATHS = {"setup.py", "conftest.py", "sitecustomize.py", "usercustomize.py"}  # named as kinds of file


def shipped_text(handout):
    """(relative path, text) of what a student reads: the Markdown files and the module docstrings."""
    for path in sorted(handout.rglob("*")):
        rel = str(path.relative_to(handout))
        if rel.startswith(("tests/cupy_emulation", "tools/course.py")) or "fixtures" in rel:
            continue  # the emulation's own notes; the teacher's table of what is left out
        if path.suffix == ".md":
            yield rel, path.read_text()
        elif path.suffix == ".py" and path.read_text().startswith('"""'):
            text = path.read_text()
            yield rel, text[:text.index('"""', 3)]


def dangling(handout):
    """The links and file names in the shipped text that do not exist in the handout."""
    missing = []
    for rel, text in shipped_text(handout):
        here = (handout / rel).parent
        for link in LINK.findall(text):
            if "://" not in link and not (here / link).exists():
                missing.append(f"{rel}: link {link}")
        for name in PATH_MENTION.findall(text):
            candidates = [handout / name, here / name, handout / "minisum" / name, handout / "docs" / name,
                          handout / "tests" / name, handout / "tools" / name]
            if name not in NOT_PATHS and not any(c.exists() for c in candidates) \
                    and not any(handout.rglob(name.rsplit("/", 1)[-1])):
                missing.append(f"{rel}: {name}")
    return missing


def code_blocks(text, language):
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def run(handout, *command, timeout=300):
    done = subprocess.run(command, cwd=handout, capture_output=True, text=True, timeout=timeout,
                          env={k: v for k, v in os.environ.items() if not k.startswith("MINISUM_")})
    return done


@pytest.fixture(scope="module")
def weekly(tmp_path_factory):
    """The handout of each weekly release, as make_handout writes it."""
    base = tmp_path_factory.mktemp("weekly")
    return {n: build(base / f"upto{n}", list(TASKS), [t for t in TASKS if assignment(t) <= n]) for n in range(1, 6)}


@pytest.mark.parametrize("upto", range(1, 6))
def test_a_weekly_handout_names_only_files_it_has(weekly, upto):
    handout = weekly[upto]
    assert not dangling(handout), dangling(handout)[:10]
    assert not (handout / "tools" / "make_handout.py").exists() and not (handout / "docs" / "derivations.md").exists()
    readme = (handout / "README.md").read_text()
    assert readme.startswith("# minisum: the course") and "docs/assignments/1-autograd.md" in readme
    teaching = (handout / "docs" / "teaching.md").read_text()
    assert "## For teachers" not in teaching and "make_handout" not in teaching
    for sheet in sorted((handout / "docs" / "assignments").glob("*.md"))[:upto]:  # a file's name alone (README.md)
        assert sheet.read_text().split("## Milestone")[1].strip(), sheet.name  # may name a shipped file too


def answer_lines(task_ids):
    """The lines of the reference's blocks of `task_ids` long enough to be an answer, not an idiom."""
    lines = {line.split("#")[0].strip() for t in task_ids for b in TASKS[t][1]
             for line in b.path.read_text().splitlines()[b.begin + 1:b.end]}
    return {line for line in lines if len(line) >= 25} - {"xp = get_array_module(gy)",
                                                          "for i, p in enumerate(self.params):"}


def leaks(handout, task_ids):
    """(file, line) of every answer line of `task_ids` in the handout's Markdown files."""
    answers = answer_lines(task_ids)
    return [(str(path.relative_to(handout)), line) for path in handout.rglob("*.md")
            for line in answers if line in path.read_text()]


def test_a_from_handout_names_only_files_it_has_and_derives_the_solved_tasks(tmp_path):
    stubbed = [t for t in TASKS if task_order(t) >= (3, 1)]
    handout = build(tmp_path / "from3", stubbed)
    assert not dangling(handout), dangling(handout)[:10]
    sheet = (handout / "docs" / "assignments" / "2-softmax-layernorm.md").read_text()
    assert "### Layer norm" in sheet  # handed out solved: its derivation joins the sheet
    assert "### The causal sum" not in (handout / "docs" / "assignments" / "3-summation.md").read_text()
    assert not leaks(handout, stubbed)


def test_no_line_of_an_answer_is_in_the_shipped_text_of_a_weekly_handout(weekly):
    for upto in (3, 5):
        assert not leaks(weekly[upto], list(TASKS)), leaks(weekly[upto], list(TASKS))[:1]


def solve(handout, task_ids):
    """Write the reference's blocks of `task_ids` into `handout`, as a student who did them would."""
    tasks = collect_tasks(ROOT)  # read afresh: the line numbers of now
    for task_id in task_ids:
        for rel in {b.path.relative_to(ROOT) for b in tasks[task_id][1]}:
            ours = [b for b in tasks[task_id][1] if b.path.relative_to(ROOT) == rel]
            lines = (handout / rel).read_text().splitlines()
            theirs = [b for b in scan_blocks(rel, lines)[0] if b.task == task_id]
            for mine, block in reversed(list(zip(ours, theirs))):  # bottom to top: line numbers stay valid
                lines[block.begin + 1:block.end] = mine.path.read_text().splitlines()[mine.begin + 1:mine.end]
            (handout / rel).write_text("\n".join(lines) + "\n")
    return handout


@pytest.fixture(scope="module")
def solved(weekly, tmp_path_factory):
    """The --upto 3 and --upto 5 handouts with their assignments done."""
    base = tmp_path_factory.mktemp("solved")
    return {n: solve_upto(weekly[n], base / f"upto{n}", n) for n in (3, 5)}


def solve_upto(handout, where, upto):
    """A copy of the --upto `upto` handout at `where`, with assignments 1 to `upto` done."""
    return solve(Path(shutil.copytree(handout, where)), [t for t in TASKS if assignment(t) <= upto])


def released_rows_pass(output, upto):
    """True when the grader's table shows every task of assignments 1..upto passed."""
    return all(re.search(rf"^{re.escape(t)} .* passed ", output, re.M) for t in TASKS if assignment(t) <= upto)


def shell_commands(text):
    """The commands of a Markdown text's bash blocks, without comments, continuations joined."""
    lines = [line.split("#")[0].strip() for block in code_blocks(text, "bash")
             for line in block.replace("\\\n", " ").splitlines()]
    return [line for line in lines if line]


def test_with_assignments_1_to_3_done_the_commands_of_the_readme_and_the_sheets_are_green(solved):
    handout = solved[3]
    texts = [handout / "README.md", handout / "docs" / "teaching.md",
             *sorted((handout / "docs" / "assignments").glob("[123]-*.md"))]
    commands = list(dict.fromkeys(c for text in texts for c in shell_commands(text.read_text())))
    commands = [c for c in commands if not c.startswith(("pip ", "python train_lm.py"))]  # installs; Assignment 5
    assert "python -m pytest -q" in commands and "python tools/grade.py" in commands
    released = sum(POINTS[t] for t in TASKS if assignment(t) <= 3)
    for command in commands:
        words = command.split()
        if words[:2] == ["python", "tools/grade.py"] and len(words) > 2 and not {"--tasks", "--upto"} & set(words):
            words += ["--tasks", "1.2"]  # each option of the grader runs; the plain command grades all
        done = run(handout, *words)
        assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-1000:]}"
        if command == "python tools/grade.py":
            assert released_rows_pass(done.stdout, 3) and f"{released} / {released}" in done.stdout, done.stdout
        elif command == "python -m pytest -q":
            assert "skipped" in done.stdout and "failed" not in done.stdout
    done = run(handout, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", "--task", "4.1")
    assert "task 4.1 is not released yet" in done.stdout


def test_with_assignments_1_to_3_done_the_tour_and_the_milestones_run(solved):
    sheets = sorted((solved[3] / "docs" / "assignments").glob("[123]-*.md"))
    texts = [(solved[3] / "README.md").read_text(), *(p.read_text().split("## Milestone")[1] for p in sheets)]
    snippets = [code for text in texts for code in code_blocks(text, "python")]
    assert len(snippets) == 4  # two tours, two milestones
    for code in snippets:
        done = run(solved[3], sys.executable, "-c", code, timeout=120)
        assert done.returncode == 0, f"{code}\n{done.stderr[-2000:]}"
    losses = [float(line.split()[1]) for line in done.stdout.splitlines()]  # the summation model's milestone
    assert losses[-1] < losses[0] - 0.5, done.stdout


def test_with_every_assignment_done_the_tour_and_milestone_4_run_and_the_self_check_gives_full_marks(solved, tmp_path):
    readme = (solved[5] / "README.md").read_text()
    milestone = (solved[5] / "docs" / "assignments" / "4-attention.md").read_text().split("## Milestone")[1]
    for code in code_blocks(readme + milestone, "python"):
        done = run(solved[5], sys.executable, "-c", code, timeout=120)
        assert done.returncode == 0, f"{code}\n{done.stderr[-2000:]}"
    training = [b for b in code_blocks(readme, "bash") if b.startswith("python train_lm.py")]
    done = run(solved[5], *training[0].replace("\\\n", " ").split(), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = tmp_path / "report.json"
    done = run(solved[5], sys.executable, "tools/grade.py", "--seed", "5", "--json", str(report))
    assert done.returncode == 0, done.stderr
    graded = json.loads(report.read_text())
    assert graded["score"] == graded["max_score"] == 100, graded


@pytest.mark.parametrize("upto", (1, 2, 4))
def test_every_other_weekly_release_done_runs_its_tour_is_green_and_gets_its_released_points(weekly, tmp_path, upto):
    """What the tests above check of weeks 3 and 5, for the other weeks: with the released
    assignments done, the README's tour runs, `python -m pytest -q` is green (the tests of the
    tasks not released yet skipped) and `python tools/grade.py` gives every released point."""
    handout = solve_upto(weekly[upto], tmp_path / f"upto{upto}", upto)
    for code in code_blocks((handout / "README.md").read_text(), "python"):
        done = run(handout, sys.executable, "-c", code, timeout=120)
        assert done.returncode == 0, f"{code}\n{done.stderr[-2000:]}"
    done = run(handout, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider")
    assert done.returncode == 0 and "failed" not in done.stdout, done.stdout[-3000:]
    done = run(handout, sys.executable, "tools/grade.py")
    released = sum(POINTS[t] for t in TASKS if assignment(t) <= upto)
    assert done.returncode == 0 and released_rows_pass(done.stdout, upto), done.stdout
    assert f"{released} / {released}" in done.stdout, done.stdout


TRACER = """
import json, sys, threading
executed = set()
def tracer(frame, event, arg):
    if frame.f_code.co_filename.startswith(ROOT):
        if event == "line":
            executed.add((frame.f_code.co_filename, frame.f_lineno))
        return tracer
    return None
sys.settrace(tracer)
threading.settrace(tracer)
import pytest
code = pytest.main(["-q", "-p", "no:cacheprovider", "-m", "task", "tests"])
sys.settrace(None)
json.dump(sorted(executed), open(OUT, "w"))
sys.exit(code)
"""


def statements(block):
    """Line numbers (from 1) of the statements in a block's body, but those only a GPU runs."""
    lines = block.path.read_text().splitlines()[block.begin + 1:block.end]
    tree = ast.parse(textwrap.dedent("\n".join(lines)))
    gpu_only = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "xp is not np" in ast.unparse(node.test):
            gpu_only |= {n.lineno for child in node.body for n in ast.walk(child) if isinstance(n, ast.stmt)}
    return {block.begin + 1 + n.lineno for n in ast.walk(tree) if isinstance(n, ast.stmt)} - \
        {block.begin + 1 + n for n in gpu_only}


def test_the_visible_tests_run_every_line_of_every_block(solved, tmp_path):
    handout, out = solved[5], tmp_path / "lines.json"  # every task released and done: every block
    script = TRACER.replace("ROOT", repr(str(handout / "minisum"))).replace("OUT", repr(str(out)))
    done = run(handout, sys.executable, "-c", script, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:]
    executed = {(Path(f), n) for f, n in json.loads(out.read_text())}
    for task_id, (_, blocks) in collect_tasks(handout).items():
        for block in blocks:
            never = sorted(n for n in statements(block) if (block.path, n) not in executed)
            where = f"{block.path.relative_to(handout)} line {never[0] if never else ''}"
            assert not never, f"task {task_id}: {where} runs in no visible test"
