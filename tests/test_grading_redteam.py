"""Red-team tests of the grader: submissions that cheat or break, and the score each must get.

Each submission is a handout with one attack planted, graded by tools/grade.py as a teacher
would (a hidden seed, the teacher's tree as the clean room). One batch grades them all in
parallel, each on the tasks it attacks (plus two it leaves alone, which must keep full marks),
so the file takes well under two minutes. The attacks of issue 21 from inside the blocks are
graded twice: as a teacher would, and with the static rules off, against the run-time wall
alone. The wrong answers that tests must fail are in test_grading_wrong_answers.py.
"""
import csv
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tools.course import POINTS  # noqa: E402
from tools.block_wall import ENVIRONMENT  # noqa: E402
from tools.clean_room import SITECUSTOMIZE  # noqa: E402
from tools.grade import grade_many, student_seed  # noqa: E402
from tools.make_handout import build  # noqa: E402
from tools.task_markers import scan_blocks  # noqa: E402

SEED = 11  # any seed but 0 turns the hidden variation on
GRADE = [sys.executable, str(ROOT / "tools" / "grade.py")]

# ----- attacks with files beside the task blocks, on a handout with no task done -----------------
FORGED_REPORTS = {
    "root conftest": {"conftest.py": """
        import pytest

        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_makereport(item, call):
            outcome = yield
            report = outcome.get_result()
            report.outcome, report.longrepr = "passed", None
        """},
    "root sitecustomize": {"sitecustomize.py": """
        import atexit, json, os
        path = os.environ.get("MINISUM_GRADE_RESULTS")
        atexit.register(lambda: path and open(path, "w").write(json.dumps({"event": "done"})))
        """},
    "edited tests/": {"tests/test_gradcheck_ops.py": """
        from conftest import task

        @task("1.4")
        def test_exp():
            pass
        """},
    "edited grader files": {"tools/grading_plugin.py": """
        def pytest_runtest_logreport(report):
            report.outcome = "passed"
        """, "tools/grade.py": "print('100 / 100')\n"},
    "atexit hook in the package": {"minisum/__init__.py": "+", "minisum/_hook.py": """
        import atexit, os
        path = os.environ.get("MINISUM_GRADE_RESULTS")
        forged = '{"event": "outcome", "test": "x", "outcome": "passed"}'
        atexit.register(lambda: path and open(path, "a").write(forged))
        """},
    "edited minisum/gradcheck.py": {"minisum/gradcheck.py": "+def gradcheck(*args, **kw):\n    return {0: 0.0}\n"},
}

# ----- attacks inside the blocks of a submission with every task done ------------------------------
# (task, block number within its file, file, new body); a body of None deletes the block's END line.
IN_BLOCKS = {
    "KeyboardInterrupt in one task": ("1.2", 0, "minisum/ops/arithmetic.py", "raise KeyboardInterrupt"),
    "finite differences": ("1.3", 2, "minisum/ops/arithmetic.py", """
        h, a, b = 1e-6, self.a, self.b
        ga = (self.forward(a + h, b) - self.forward(a - h, b)) / (2 * h)  # its forward at shifted inputs
        gb = (self.forward(a, b + h) - self.forward(a, b - h)) / (2 * h)
        return sum_to(gy * ga, a.shape), sum_to(gy * gb, b.shape)
        """),
    "os._exit in one task": ("1.4", 0, "minisum/ops/elementwise.py", "import os\nos._exit(0)"),
    "float64 promotion": ("1.5", 2, "minisum/ops/reductions.py", """
        is_max = (self.x == self.y).astype(float)  # float64 whatever the input
        share = is_max / is_max.sum(axis=self.axis, keepdims=True)
        return gy.reshape(self.y.shape) * share
        """),
    "syntax error in one task": ("1.6", 1, "minisum/ops/matmul.py", "gx = (gy.reshape(-1, 3) @ self.weight\nreturn gx"),
    "torch": ("2.1", 0, "minisum/ops/softmax.py", """
        import torch  # with or without torch installed: the rule is read, not run
        return torch.autograd.grad(torch.softmax(torch.from_numpy(y), -1), torch.from_numpy(y), torch.from_numpy(gy))
        """),
    "composite twin inside 2.2": ("2.2", 0, "minisum/ops/layernorm.py", """
        from minisum.ops.composite import layer_norm_composite
        return layer_norm_composite(self.x_hat, self.weight, 0)
        """),
    "embedding right only for rows < 6": ("3.1", 0, "minisum/ops/embedding.py", """
        gw = get_array_module(gy).zeros(self.table_shape, dtype=gy.dtype)  # (V, C)
        ids, rows = self.ids.reshape(-1), gy.reshape(-1, self.table_shape[1])
        scatter_add(gw, ids[ids < 6], rows[ids < 6])
        return gw, None
        """),
    "cumsum right only for short T": ("3.2", 0, "minisum/ops/cumsum.py", """
        s = x.copy()
        steps = np.moveaxis(s, axis, 0)
        for t in range(1, min(len(steps), 6)):  # stops after t = 5
            steps[t] += steps[t - 1]
        return s
        """),
    "deleted END TASK line": ("5.2", 0, "minisum/training.py", None),
}
# The composite twin instead of task 4.1: the blocks stay stubs, the op outside them calls the twin.
TWIN_INSTEAD = ("def attention(q, k, v, n_heads, causal=False):\n",
                "def attention(q, k, v, n_heads, causal=False):\n"
                "    from minisum.ops.composite import attention_composite\n"
                "    return attention_composite(q, k, v, n_heads, causal)\n")
# Finite differences through the module's own forward helper: seen only at run time.
CUMSUM_BY_DIFFERENCES = ("3.2", 1, "minisum/ops/cumsum.py", """
    gx, e = gs * 0, gs * 0
    for i in range(e.size):  # the op is linear: one forward per unit input is its derivative
        e.flat[i] = 1.0
        gx.flat[i] = (cumsum_forward(e, axis) * gs).sum()
        e.flat[i] = 0.0
    return gx
    """)
# A line indented less than the markers ends the method: code outside the block (a new forward).
OUTSIDE_THE_BLOCK = ("1.3", 4, "minisum/ops/arithmetic.py",
                     "        return -gy\n\n    def forward(self, x):\n        return x\n", "as written")


def copy_of(handout, to):
    shutil.copytree(handout, to)
    return Path(to)


def plant_files(root, files):
    for rel, text in files.items():
        path = root / rel
        if text == "+":  # import the module planted beside it
            path.write_text(path.read_text() + "from minisum import _hook  # noqa\n")
        elif text.startswith("+"):
            path.write_text(path.read_text() + text[1:])
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))


def set_block(root, task_id, nth, rel, body, indent="the block's"):
    path = root / rel
    lines = path.read_text().splitlines()
    block = [b for b in scan_blocks(rel, lines)[0] if b.task == task_id][nth]
    if body is None:
        del lines[block.end]
    elif indent == "as written":
        lines[block.begin + 1:block.end] = body.splitlines()
    else:
        lines[block.begin + 1:block.end] = textwrap.indent(textwrap.dedent(body).strip("\n"), block.indent).splitlines()
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("redteam")
    bare, solved = build(base / "bare"), build(base / "solved", stubbed=[])
    tasks = {}
    for n, (attack, files) in enumerate(FORGED_REPORTS.items()):
        submission = copy_of(bare, base / f"forged{n}")
        plant_files(submission, files)
        tasks[str(submission)] = ["1.4"]
    broken = copy_of(solved, base / "broken")
    for task_id, nth, rel, body in IN_BLOCKS.values():
        set_block(broken, task_id, nth, rel, body)
    for nth in (0, 1):
        set_block(broken, "4.1", nth, "minisum/ops/attention.py", 'raise NotImplementedError("Task 4.1: attention")')
    attention = broken / "minisum/ops/attention.py"
    attention.write_text(attention.read_text().replace(*TWIN_INSTEAD))
    tasks[str(broken)] = list(POINTS)
    differences = copy_of(solved, base / "differences")
    set_block(differences, *CUMSUM_BY_DIFFERENCES)
    set_block(differences, *OUTSIDE_THE_BLOCK)
    tasks[str(differences)] = ["3.2", "1.3"]
    reports, _ = grade_many(list(tasks), SEED, tasks, timeout=60)
    looping = copy_of(solved, base / "looping")
    set_block(looping, "1.2", 0, "minisum/ops/arithmetic.py", "while True:\n    pass")
    reports.update(grade_many([str(looping)], SEED, ["1.2"], timeout=6)[0])
    forged = {attack: reports[str(base / f"forged{n}")] for n, attack in enumerate(FORGED_REPORTS)}
    return forged, reports[str(broken)]["tasks"], reports[str(differences)]["tasks"], reports[str(looping)]["tasks"]


@pytest.mark.parametrize("attack", FORGED_REPORTS)
def test_files_beside_the_blocks_cannot_forge_a_grade(graded, attack):
    report = graded[0][attack]
    assert report["score"] == 0 and report["tasks"]["1.4"]["status"] == "missing"
    assert report["tasks"]["1.4"]["tests_total"] > 0


@pytest.mark.parametrize("attack, task_id, status", [
    ("KeyboardInterrupt in one task", "1.2", "rule"),  # not a builtin a block may name
    ("finite differences", "1.3", "rule"),
    ("os._exit in one task", "1.4", "rule"),
    ("syntax error in one task", "1.6", "missing"),
    ("torch", "2.1", "rule"),
    ("composite twin inside 2.2", "2.2", "rule"),
    ("composite twin instead of 4.1", "4.1", "missing"),
    ("deleted END TASK line", "5.2", "missing"),
])
def test_a_broken_or_forbidden_block_scores_zero_on_its_task_only(graded, attack, task_id, status):
    tasks = graded[1]
    assert tasks[task_id]["status"] == status and tasks[task_id]["score"] == 0, tasks[task_id]
    assert tasks[task_id]["messages"]
    for untouched in ("1.1", "5.1"):
        assert tasks[untouched]["status"] == "passed" and tasks[untouched]["score"] == POINTS[untouched]


@pytest.mark.parametrize("task_id", ["1.5", "3.1", "3.2"])
def test_code_right_only_for_the_visible_tests_loses_points(graded, task_id):
    row = graded[1][task_id]  # float64 out of float32 (1.5), rows >= 6 (3.1), t > 5 (3.2)
    assert row["status"] == "failed" and 0 < row["score"] < POINTS[task_id], row


def test_the_messages_name_the_problem(graded):
    tasks = graded[1]
    assert any("imports os" in m for m in tasks["1.4"]["messages"])
    assert any("uses torch" in m for m in tasks["2.1"]["messages"])
    assert any("does not parse" in m for m in tasks["1.6"]["messages"])
    assert any("has no END" in m for m in tasks["5.2"]["messages"])
    assert any("finite differences" in m for m in tasks["1.3"]["messages"])
    assert any("float32" in m or "float64" in m for m in tasks["1.5"]["messages"])


def test_finite_differences_through_the_forward_helper_are_caught_at_run_time(graded):
    row = graded[2]["3.2"]
    assert row["status"] == "rule" and row["score"] == 0
    assert any("CumSum.backward called its own forward" in m for m in row["messages"])


def test_a_block_cannot_reach_outside_its_function(graded):
    row = graded[2]["1.3"]
    assert row["status"] == "missing" and row["score"] == 0
    assert any("indented less than its markers" in m for m in row["messages"])


def test_an_infinite_loop_times_out(graded):
    row = graded[3]["1.2"]  # its own process is stopped; every other task runs in its own
    assert row["status"] == "timeout" and row["score"] == 0 and "stopped after 6 s" in row["messages"][0]


# ----- issue 21: escapes from inside a block, shortcuts, leaks, and the class run -----------------------
EXP = ("1.4", 0, "minisum/ops/elementwise.py")  # Exp.backward: `return gy * self.y`
LAYER_NORM = ("2.2", 0, "minisum/ops/layernorm.py")  # LayerNorm.backward, x_hat computed before the block
LAYER_NORM_BODY = """
    C = x_hat.shape[-1]
    g = gy * self.weight
    gx = self.rstd * (g - g.mean(axis=-1, keepdims=True) - x_hat * (g * x_hat).mean(axis=-1, keepdims=True))
    return gx, (gy * x_hat).reshape(-1, C).sum(axis=0), gy.reshape(-1, C).sum(axis=0)
    """
# Python run by numpy.testing.runstring: what the static rules cannot see in a string.
PATCH_THE_CHECKS = ("import minisum.gradcheck as g, numpy\\n"
                    "g.relative_error = lambda a, n, floor=0: abs(a - a)\\n"
                    "numpy.testing.assert_allclose = lambda *a, **k: None")
KILL_THE_GRADER = "import os, signal\\nos.kill(os.getppid(), signal.SIGKILL)"
DAEMON = ("import os, time, json\\n"
          "gp = os.getppid()\\n"
          "args = open(f'/proc/{gp}/cmdline').read().split(chr(0))\\n"
          "report = os.path.join(os.readlink(f'/proc/{gp}/cwd'), args[args.index('--json') + 1])\\n"
          "if os.fork() == 0:\\n"
          "    os.setsid()\\n"
          "    if os.fork() == 0:\\n"
          "        while os.path.exists(f'/proc/{gp}'):\\n"
          "            time.sleep(0.05)\\n"
          "        json.dump({'score': 100, 'max_score': 100, 'tasks': {}}, open(report, 'w'))\\n"
          "    os._exit(0)\\n")
WRITE_THE_TEACHERS_TREE = """
    root = get_array_module(gy).testing.NUMPY_ROOT
    ppid = root.joinpath("/proc/self/stat").read_text().split()[3]
    root.joinpath("/proc", ppid, "cwd", "tools", "written_by_a_block.py").write_text("# a block wrote here")
    return gy * self.y
    """


def runstring(code):
    return f'get_array_module(gy).testing.runstring("{code}", {{}})\nreturn gy * self.y'


# attack -> (block, body, the tasks graded); each a solved handout with one block changed
ESCAPES = {
    "runstring escape": (EXP, runstring(PATCH_THE_CHECKS)),
    "attrgetter escape": (EXP, """
        ga = get_array_module(gy).ma.core.operator.attrgetter
        checks = ga("modules")(ga("__globals__")(get_array_module)["sys"])["minisum.gradcheck"]
        ga("__setattr__")(checks)("relative_error", lambda a, n, floor=0: a * 0)
        return gy * 0
        """),
    "self-rebind": (EXP, "self = get_array_module(gy).testing\nself.assert_allclose = print\nreturn gy * 0"),
    "NUMPY_ROOT write into the teacher's tree": (EXP, WRITE_THE_TEACHERS_TREE),
    "double-forked daemon": (EXP, runstring(DAEMON)),
    "kills the grader": (EXP, runstring(KILL_THE_GRADER)),
    "message leak": (LAYER_NORM, 'raise ValueError("LEAK " + str(self.rstd.ravel().tolist()))'),
    "upstream-mutating backward": (LAYER_NORM, """
        gy[...] = 0
        return gy, gy.reshape(-1, gy.shape[-1]).sum(axis=0), gy.reshape(-1, gy.shape[-1]).sum(axis=0)
        """),
    "batched finite differences": (LAYER_NORM, """
        C, h = x_hat.shape[-1], 1e-5
        xp = get_array_module(gy)
        xs = self.x.reshape(-1, C)
        eye = xp.eye(C, dtype=xs.dtype) * h
        both = xp.concatenate([(xs[:, None, :] + eye).reshape(-1, C), (xs[:, None, :] - eye).reshape(-1, C)])
        ys = self.forward(both, self.weight, self.weight * 0).reshape(2, -1, C, C)  # ONE call of its forward
        gx = ((ys[0] - ys[1]) * gy.reshape(-1, 1, C)).sum(axis=-1) / (2 * h)
        gw, gb = (gy * x_hat).reshape(-1, C).sum(axis=0), gy.reshape(-1, C).sum(axis=0)
        return gx.reshape(x_hat.shape).astype(gy.dtype), gw, gb
        """),
    "Jacobian from the forward": (("3.2", 1, "minisum/ops/cumsum.py"), """
        xp = get_array_module(gs)
        J = cumsum_forward(xp.eye(gs.shape[axis], dtype=gs.dtype), 0)  # (T, T): the forward on every unit input
        return xp.moveaxis(xp.tensordot(J, xp.moveaxis(gs, axis, 0), axes=([0], [0])), 0, axis)
        """),
    "autograd inside a backward": (LAYER_NORM, """
        x, w, b = self.inputs  # the op's own input tensors: a graph of other ops over them
        xc = x - x.mean(axis=-1, keepdims=True)
        y = xc * ((xc * xc).mean(axis=-1, keepdims=True) + self.eps) ** -0.5 * w + b
        y.backward(gy)  # the leaves' .grad filled by autograd; the op itself returns zeros
        xp = get_array_module(gy)
        return xp.zeros(x.shape, gy.dtype), xp.zeros(w.shape, gy.dtype), xp.zeros(b.shape, gy.dtype)
        """),
    "stray marker": (LAYER_NORM, "# BEGIN TASK 2.1 stray\n" + textwrap.dedent(LAYER_NORM_BODY)),
    "8 GiB block": (LAYER_NORM, "big = get_array_module(gy).empty(2 ** 30)  # 8 GiB of float64, each page touched\n"
                                "big[::512] = 1\n" + textwrap.dedent(LAYER_NORM_BODY)),
}
GRADED = {"stray marker": ["2.1", "2.2"]}
# attack -> {task: (status, score)} now (issue 21 measured the grades before)
EXPECTED = {
    "runstring escape": {"1.4": ("rule", 0)},
    "attrgetter escape": {"1.4": ("rule", 0)},
    "self-rebind": {"1.4": ("rule", 0)},
    "NUMPY_ROOT write into the teacher's tree": {"1.4": ("rule", 0)},
    "double-forked daemon": {"1.4": ("rule", 0)},
    "kills the grader": {"1.4": ("rule", 0)},
    "message leak": {"2.2": ("failed", 0)},
    "upstream-mutating backward": {"2.2": ("failed", POINTS["2.2"] / 4)},  # at most: a check of sums passes zeros
    "batched finite differences": {"2.2": ("rule", 0)},
    "Jacobian from the forward": {"3.2": ("rule", 0)},
    "autograd inside a backward": {"2.2": ("rule", 0)},
    "stray marker": {"2.1": ("passed", POINTS["2.1"]), "2.2": ("missing", 0)},
    "8 GiB block": {"2.2": ("failed", 0)},
}
AT_MOST = {"upstream-mutating backward"}  # its tests are another's to tighten (tests/test_grading_wrong_answers.py)
MESSAGE = {
    "runstring escape": "uses .testing", "attrgetter escape": "uses .ma", "self-rebind": "rebinds self",
    "NUMPY_ROOT write into the teacher's tree": "uses .testing", "double-forked daemon": "uses .testing",
    "kills the grader": "uses .testing", "message leak": "ValueError raised in the task's code",
    "upstream-mutating backward": "wrote into the upstream gradient",
    "batched finite differences": "finite differences or a Jacobian",  # too slow, or out of memory
    "Jacobian from the forward": "finite differences or a Jacobian",  # too slow, or out of memory
    "autograd inside a backward": "builds a graph", "autograd inside a backward": "builds a graph",
    "stray marker": "TASK 2.1 begins inside TASK 2.2", "8 GiB block": "MemoryError raised in the task's code",
}
# The runtime wall alone: the same escapes with the static rules switched off, in a class run
# (the grader a process of its own, run from a folder standing in for the teacher's tree).
UNCHECKED_GRADE = ("import sys; sys.path.insert(0, {root!r}); import tools.submission as s; "
                   "s.check_block = lambda *a, **k: []; from tools.grade import main; sys.exit(main(sys.argv[1:]))")
AT_RUN_TIME = {"runstring escape": "tried `compile`", "NUMPY_ROOT write into the teacher's tree": "tried `open`",
               "kills the grader": "tried `",  # open of /proc or os.kill, whichever comes first
               "attrgetter escape": "tried `"}


def slug(attack):
    return "".join(c if c.isalnum() else "_" for c in attack)


@pytest.fixture(scope="module")
def solved(tmp_path_factory):
    return build(tmp_path_factory.mktemp("redteam21") / "solved", stubbed=[])


@pytest.fixture(scope="module")
def escapes(solved, tmp_path_factory):
    base = tmp_path_factory.mktemp("escapes")
    tasks = {}
    for attack, (block, body) in ESCAPES.items():
        submission = copy_of(solved, base / slug(attack))
        set_block(submission, *block, body)
        tasks[str(submission)] = GRADED.get(attack, [block[0]])
    written = ROOT / "tools" / "written_by_a_block.py"
    reports, _ = grade_many(list(tasks), SEED, tasks, timeout=60)
    assert not written.exists(), "a block wrote into the teacher's tree"
    return {attack: reports[str(base / slug(attack))]["tasks"] for attack in ESCAPES}


@pytest.mark.parametrize("attack", ESCAPES)
def test_an_attack_from_inside_a_block_gets_exactly_its_grade(escapes, attack):
    for task_id, (status, score) in EXPECTED[attack].items():
        row = escapes[attack][task_id]
        assert row["status"] == status and (row["score"] <= score if attack in AT_MOST else row["score"] == score), row
    messages = [m for row in escapes[attack].values() for m in row["messages"]]
    assert any(MESSAGE[attack] in m for m in messages), messages
    assert not any("LEAK" in m for m in messages)


@pytest.fixture(scope="module")
def unchecked_class_run(solved, tmp_path_factory):
    """A class run with the static rules off: the escapes meet the run-time wall alone."""
    base = tmp_path_factory.mktemp("unchecked")
    teacher = base / "teacher"
    (teacher / "tools").mkdir(parents=True)  # the grader's folder, where a block would write
    names = [*AT_RUN_TIME, "classmate"]
    for attack in names:
        submission = copy_of(solved, base / slug(attack))
        if attack in ESCAPES:
            set_block(submission, *ESCAPES[attack][0], ESCAPES[attack][1])
    grades = base / "grades.csv"
    done = subprocess.run([sys.executable, "-c", UNCHECKED_GRADE.format(root=str(ROOT)),
                           *(str(base / slug(a)) for a in names), "--tasks", "1.4", "--seed", str(SEED),
                           "--csv", str(grades), "--json", str(base / "reports")],
                          cwd=teacher, capture_output=True, text=True, timeout=300)
    return done, teacher, grades, base / "reports"


def test_the_run_time_wall_stops_what_the_static_rules_would_miss(unchecked_class_run):
    done, teacher, grades, reports = unchecked_class_run
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {r["submission"]: r for r in csv.DictReader(grades.open())}  # every row written
    assert rows["classmate"]["1.4"] == str(float(POINTS["1.4"]))
    for attack, message in AT_RUN_TIME.items():
        row = json.loads((reports / f"{slug(attack)}.json").read_text())["tasks"]["1.4"]
        assert (row["status"], row["score"]) == ("rule", 0), row
        assert any(message in m for m in row["messages"]), row["messages"]
    assert not (teacher / "tools" / "written_by_a_block.py").exists()


def test_a_daemon_cannot_rewrite_the_report_after_the_grader_exits(solved, tmp_path):
    submission = copy_of(solved, tmp_path / "daemon")
    set_block(submission, *ESCAPES["double-forked daemon"][0], ESCAPES["double-forked daemon"][1])
    done = subprocess.run([sys.executable, "-c", UNCHECKED_GRADE.format(root=str(ROOT)), str(submission),
                           "--tasks", "1.4", "--seed", str(SEED), "--json", "report.json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    time.sleep(1.5)  # a daemon, had one survived, would have rewritten it by now
    row = json.loads((tmp_path / "report.json").read_text())["tasks"]["1.4"]
    assert (row["status"], row["score"]) == ("rule", 0), row


def test_a_class_run_survives_a_block_that_kills_the_grader(solved, tmp_path):
    killer, classmate = copy_of(solved, tmp_path / "killer"), copy_of(solved, tmp_path / "classmate")
    set_block(killer, *ESCAPES["kills the grader"][0], ESCAPES["kills the grader"][1])
    done = subprocess.run([*GRADE, str(killer), str(classmate), "--tasks", "1.4", "--seed", str(SEED),
                           "--csv", str(tmp_path / "grades.csv")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {r["submission"]: r for r in csv.DictReader((tmp_path / "grades.csv").open())}
    assert rows["killer"]["1.4"] == "0.0" and rows["classmate"]["1.4"] == str(float(POINTS["1.4"]))


def test_the_seed_is_in_no_student_facing_output(solved, tmp_path):
    secret = "987654321"
    done = subprocess.run([*GRADE, str(solved), "--tasks", "1.2", "--seed", secret, "--json", str(tmp_path / "r.json"),
                           "--gradescope", str(tmp_path / "results.json")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for text in ((tmp_path / "r.json").read_text(), (tmp_path / "results.json").read_text(), done.stdout):
        assert secret not in text and str(student_seed(int(secret), solved)) not in text
    assert student_seed(int(secret), "alice") != student_seed(int(secret), "bob") and student_seed(0, "alice") == 0
    assert student_seed(7, ROOT) == 7  # a self-check: replayed with pytest --seed 7


def test_a_submission_that_loops_in_every_task_stops_at_its_budget(solved, tmp_path):
    looping = copy_of(solved, tmp_path / "looping")
    for task_id, rel in (("1.2", "minisum/ops/arithmetic.py"), ("1.4", "minisum/ops/elementwise.py")):
        set_block(looping, task_id, 0, rel, "while True:\n    pass")
    reports, _ = grade_many([str(looping)], SEED, ["1.2", "1.4"], timeout=3, jobs=1, budget=4)
    rows = reports[str(looping)]["tasks"]
    assert [(r["status"], r["score"]) for r in rows.values()] == [("timeout", 0), ("timeout", 0)], rows
    # 1.4 (graded first) gets its 3 s; 1.2 only the second or so left of the 4, not 3 s more
    assert rows["1.4"]["messages"][0].startswith("stopped after 3 s"), rows
    assert not rows["1.2"]["messages"][0].startswith("stopped after 3 s"), rows


def test_a_task_file_that_is_a_link_to_the_teachers_or_a_fifo_is_not_read(solved, tmp_path):
    submission = copy_of(solved, tmp_path / "links")
    elementwise, reductions = submission / "minisum/ops/elementwise.py", submission / "minisum/ops/reductions.py"
    elementwise.unlink()
    elementwise.symlink_to(ROOT / "minisum/ops/elementwise.py")  # the teacher's answers, where a grader keeps them
    reductions.unlink()
    os.mkfifo(reductions)  # a read that waits for a writer
    done = subprocess.run([*GRADE, str(submission), "--tasks", "1.4,1.5", "--seed", str(SEED), "--json", "r.json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads((tmp_path / "r.json").read_text())["tasks"]
    for task_id, why in (("1.4", "a symbolic link"), ("1.5", "not a regular file")):
        assert (rows[task_id]["status"], rows[task_id]["score"]) == ("missing", 0), rows[task_id]
        assert why in rows[task_id]["messages"][0], rows[task_id]


def test_a_weekly_handout_grades_its_released_tasks_only(tmp_path):
    week1 = build(tmp_path / "week1", released=[t for t in POINTS if t.startswith("1.")])
    done = subprocess.run([sys.executable, "tools/grade.py"], cwd=week1, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2.1   softmax" in done.stdout and "not released" in done.stdout
    released = sum(points for t, points in POINTS.items() if t.startswith("1."))
    assert done.stdout.splitlines()[-2].split()[-2:] == ["/", f"{released:g}"]


def test_a_python_that_a_test_starts_meets_the_wall_too(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)  # as the grader writes it into a clean room
    (tmp_path / "tools").symlink_to(ROOT / "tools")
    (tmp_path / "blocky.py").write_text("def f():\n    return open(__file__).read()[:3]\n")  # line 2: a block
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINISUM_", "PYTHON"))}
    env["PYTHONPATH"] = str(tmp_path)
    code = [sys.executable, "-c", "import blocky; print(blocky.f())"]
    assert subprocess.run(code, env=env, cwd=tmp_path, capture_output=True, text=True).stdout == "def\n"
    env[ENVIRONMENT] = json.dumps({str(tmp_path / "blocky.py"): [[2, 2]]})  # what the plugin sets for its children
    done = subprocess.run(code, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode != 0 and "BlockEscape: open is not allowed in a task block" in done.stderr
