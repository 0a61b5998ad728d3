"""Red-team tests of the grader: submissions that cheat or break, and the score each must get.

Each submission is a handout with one attack planted, graded by tools/grade.py as a teacher
would (a hidden seed, the teacher's tree as the clean room). One batch grades them all in
parallel, each on the tasks it attacks (plus two it leaves alone, which must keep full marks),
so the file takes well under two minutes.
"""
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tools.course import POINTS  # noqa: E402
from tools.grade import grade_many  # noqa: E402
from tools.make_handout import build  # noqa: E402
from tools.task_markers import scan_blocks  # noqa: E402

SEED = 11  # any seed but 0 turns the hidden variation on

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
        h = 1e-6
        fresh = type(self)()  # a new Mul: its forward at shifted inputs
        ga = (fresh.forward(self.a + h, self.b) - fresh.forward(self.a - h, self.b)) / (2 * h)
        gb = (fresh.forward(self.a, self.b + h) - fresh.forward(self.a, self.b - h)) / (2 * h)
        return sum_to(gy * ga, self.a.shape), sum_to(gy * gb, self.b.shape)
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
    ("KeyboardInterrupt in one task", "1.2", "crashed"),
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
