"""Wrong answers inside the blocks, and the exact grade each gets (issue 21, class 2).

Each attack is a handout with every task solved and the blocks of one or a few tasks replaced
by a plausible wrong answer that keeps every rule: the grader cannot tell it from a right one
by reading it, only the tests can. Each is graded as a teacher would, with
`python tools/grade.py SUBMISSION --tasks ... --seed S --json REPORT`, all of them at once.
The grades pin how little a wrong answer earns: a task whose gradients are wrong keeps at most
a quarter of its points (the dtype and no-op tests it still passes, by weight).
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tools.course import POINTS  # noqa: E402
from tools.make_handout import build  # noqa: E402
from test_grading_redteam import copy_of, set_block  # noqa: E402

SECRET = 11  # a grading seed: the hidden variation is on

CUMSUM, ATTENTION = "minisum/ops/cumsum.py", "minisum/ops/attention.py"
ELEMENTWISE, LAYERNORM = "minisum/ops/elementwise.py", "minisum/ops/layernorm.py"

# a causal sum from the end instead of from the start, with the exact backward of that forward:
# every gradient check passes, only the values are wrong
REVERSED_SUM = """
    s = x.copy()
    steps = np.moveaxis(s, axis, 0)
    for t in range(len(steps) - 2, -1, -1):
        steps[t] += steps[t + 1]
    return s
    """
FORWARD_SUM = """
    gx = gs.copy()
    steps = np.moveaxis(gx, axis, 0)
    for t in range(1, len(steps)):
        steps[t] += steps[t - 1]
    return gx
    """
# right for the first 16 positions only, forward and (the exact transpose of that) backward
SHORT_SUM = """
    s = x.copy()
    steps = np.moveaxis(s, axis, 0)
    for t in range(1, min(len(steps), 16)):
        steps[t] += steps[t - 1]
    return s
    """
SHORT_SUM_BACKWARD = """
    gx = gs.copy()
    steps = np.moveaxis(gx, axis, 0)
    for t in range(min(len(steps), 16) - 2, -1, -1):
        steps[t] += steps[t + 1]
    return gx
    """
UNMASKED_ATTENTION = """
    xp = get_array_module(q)
    scale = q.dtype.type(1 / math.sqrt(q.shape[-1]))
    probs = softmax_forward((q * scale) @ k.swapaxes(-1, -2))  # the mask forgotten
    return probs @ v, probs
    """
ADAMW_THAT_ZEROES_ITS_GRADIENT = """
    m *= b1
    m += (1 - b1) * g
    v *= b2
    v += (1 - b2) * (g * g)
    w -= decay * w + step_size * m / ((v * v_scale) ** 0.5 + eps)
    g *= 0
    """
# trains while its loss is high, then reports a small constant without backward or step (a block
# keeps no counter of its own: the rules let it assign only self.x, .data and .grad)
TRAINS_THEN_A_CONSTANT = """
    optimizer.zero_grad()
    loss, hits = model.loss(inputs, targets, pad_id)
    if loss.item() < 2.0:
        return inputs.sum() * 0.0 + 0.01, hits
    loss.backward(free_graph=True)
    optimizer.step()
    return loss, hits
    """
EMBEDDING_BELOW_ROW_6 = """
    xp = get_array_module(gy)
    gw = xp.zeros(self.table_shape, dtype=gy.dtype)  # (V, C)
    ids, rows = self.ids.reshape(-1), gy.reshape(-1, self.table_shape[1])
    scatter_add(gw, ids[ids < 6], rows[ids < 6])
    return gw, None
    """
LAYER_NORM = {
    "zero": "C = gy.shape[-1]\nreturn gy * 0, gy.reshape(-1, C).sum(axis=0) * 0, gy.reshape(-1, C).sum(axis=0) * 0",
    "identity": "C = gy.shape[-1]\nreturn gy, gy.reshape(-1, C).sum(axis=0), gy.reshape(-1, C).sum(axis=0)",
}

# attack -> (seed, [(task, nth block of the task in its file, file, body)])
ATTACKS = {
    "adamw_update zeroes the test's gradient array": (SECRET, [("5.1", 0, "minisum/optim.py",
                                                                ADAMW_THAT_ZEROES_ITS_GRADIENT)]),
    "causal sum the wrong way, its exact backward": (SECRET, [("3.2", 0, CUMSUM, REVERSED_SUM),
                                                              ("3.2", 1, CUMSUM, FORWARD_SUM)]),
    "attention that never masks": (SECRET, [("4.1", 0, ATTENTION, UNMASKED_ATTENTION)]),
    "trains until its loss is under 2, then returns a constant": (SECRET, [("5.2", 0, "minisum/training.py",
                                                                           TRAINS_THEN_A_CONSTANT)]),
    "cumsum right only up to T 16": (SECRET, [("3.2", 0, CUMSUM, SHORT_SUM), ("3.2", 1, CUMSUM, SHORT_SUM_BACKWARD)]),
    "all-zero gradients": (SECRET, [*[("1.4", n, ELEMENTWISE, "return gy * 0") for n in range(5)],
                                    ("2.2", 0, LAYERNORM, LAYER_NORM["zero"]),
                                    ("3.2", 1, CUMSUM, "return gs * 0"),
                                    ("4.1", 1, ATTENTION, "return q * 0, k * 0, v * 0")]),
    "identity pass-through": (SECRET, [*[("1.4", n, ELEMENTWISE, "return gy") for n in range(5)],
                                       ("2.2", 0, LAYERNORM, LAYER_NORM["identity"]),
                                       ("3.2", 1, CUMSUM, "return gs")]),
    "embedding backward that skips rows >= 6, at seed 0": (0, [("3.1", 0, "minisum/ops/embedding.py",
                                                                 EMBEDDING_BELOW_ROW_6)]),
}

# attack -> {task: its score}. Before the tests were weighted and checked forwards, copies and
# wide shapes (commit bd9657e), in this order: 5.1 2.1/7; 3.2 4.8/8; 4.1 10.89/14; 5.2 4.67/7;
# 3.2 8/8; 1.4 2.5/5, 2.2 2/8, 3.2 0.8/8, 4.1 1.56/14; 1.4 2.5/5, 2.2 2/8, 3.2 0.8/8; 3.1 6/6.
EXPECTED = {
    "adamw_update zeroes the test's gradient array": {"5.1": 1.34},
    "causal sum the wrong way, its exact backward": {"3.2": 0.24},
    "attention that never masks": {"4.1": 3.38},
    "trains until its loss is under 2, then returns a constant": {"5.2": 0.88},
    "cumsum right only up to T 16": {"3.2": 1.7},
    "all-zero gradients": {"1.4": 0.29, "2.2": 0.33, "3.2": 1.21, "4.1": 2.41},
    "identity pass-through": {"1.4": 0.52, "2.2": 0.33, "3.2": 1.21},
    "embedding backward that skips rows >= 6, at seed 0": {"3.1": 4.55},  # indexing, 3.1's other half, is right
}
WRONG_GRADIENTS = [attack for attack in EXPECTED if "embedding" not in attack]  # every graded block wrong


@pytest.fixture(scope="module")
def grades(tmp_path_factory):
    """attack -> {task: score}, each attack graded by its own tools/grade.py, all at once."""
    base = tmp_path_factory.mktemp("wrong")
    solved = build(base / "solved", stubbed=[])
    running = {}
    for n, (attack, (seed, blocks)) in enumerate(ATTACKS.items()):
        submission = copy_of(solved / "minisum", base / f"attack{n}" / "minisum").parent
        for task_id, nth, rel, body in blocks:
            set_block(submission, task_id, nth, rel, body)
        tasks = sorted({task_id for task_id, *_ in blocks})
        report = base / f"attack{n}.json"
        command = [sys.executable, str(ROOT / "tools" / "grade.py"), str(submission), "--tasks", ",".join(tasks),
                   "--seed", str(seed), "--json", str(report), "--jobs", "1"]
        running[attack] = (subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
                           report)
    graded = {}
    for attack, (process, report) in running.items():
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-2000:]
        graded[attack] = {t: row["score"] for t, row in json.loads(report.read_text())["tasks"].items()}
    return graded


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_wrong_answer_gets_the_grade_it_earns(grades, attack):
    assert grades[attack] == EXPECTED[attack]
    if attack in WRONG_GRADIENTS:
        assert all(score <= POINTS[t] / 4 for t, score in grades[attack].items())
    else:
        assert all(score < POINTS[t] for t, score in grades[attack].items())
