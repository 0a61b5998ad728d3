"""train_mm.py end to end: the committed synthetic fixture with tiny sizes, the synthetic
table showing that fusion uses both inputs, and bad input failing cleanly before anything
is written.
"""
import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minisum
import train_mm
from conftest import on_device, to_host
from minisum.errors import UserError
from minisum.models import SummationFusionRegressor

pytestmark = pytest.mark.needs_engine  # every test here runs code of several tasks

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "mm" / "synthetic_200.csv"
TINY = ["--seq-len", "16", "--d-model", "8", "--head-dim", "4", "--max-tokens", "50", "--epochs", "3"]


def test_end_to_end_on_the_fixture(tmp_path):
    out = tmp_path / "run"
    train_mm.main(["--data-file", str(FIXTURE), "--out-dir", str(out), *TINY])
    results = json.loads((out / "results.json").read_text())
    # 200 rows: test ceil(0.2 * 200) = 40, validation ceil(0.25 * 160) = 40, train 120
    assert results["data"]["split"] == {"train": 120, "val": 40, "test": 40}
    assert results["data"]["vocab_size"] <= 50
    assert set(results["models"]) == {"ridge", "attention", "summation"}
    assert results["models"]["ridge"]["params"] == 5  # four weights and the intercept
    for name in ("attention", "summation"):
        history = results["models"][name]["history"]
        assert [h["epoch"] for h in history] == [1, 2, 3]  # patience 5 cannot stop 3 epochs
        assert all(h["lr"] == 1e-4 for h in history)  # nor can patience 3 reduce the rate
        assert all(math.isfinite(h["val_loss"]) and h["seconds"] > 0 for h in history)
    for r in results["models"].values():
        m = r["test"]
        assert m["rmse"] == pytest.approx(math.sqrt(m["mse"]))
        assert 0 <= m["mae"] <= m["rmse"]
    assert results["config"]["batch_size"] == 64 and results["config"]["lr"] == 1e-4
    assert results["hardware"]["device"] == os.environ["MINISUM_DEVICE"]  # the suite's, as no --device is given
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fused_models_use_both_text_and_numbers(tmp_path):
    """The synthetic target is f(words) + g(numbers) + noise with Var f ~ Var g: the best
    possible R² is ~0.45 from the text alone, ~0.50 from the numbers alone, ~0.95 from both
    (minisum/data/synthetic_multimodal.py). Ridge sees the numbers only; a fused model
    above 0.7 must be using both inputs. Measured with these settings and seeds 0-3:
    ridge 0.33-0.57, fused 0.87-0.94.

    A subprocess with one BLAS thread: these matrices are tiny, and OpenBLAS' spinning
    threads made the run 3-10x slower on a busy 2-core machine."""
    flags = ["--synthetic", "300", "--seq-len", "20", "--d-model", "16", "--head-dim", "8", "--epochs", "25",
             "--lr", "5e-3", "--batch-size", "32", "--out-dir", str(tmp_path)]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, str(ROOT / "train_mm.py"), *flags], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    r2 = {name: r["test"]["r2"] for name, r in results["models"].items()}
    assert results["constant_baseline"]["r2"] <= 0.0  # the training mean explains nothing on the test split
    assert 0.2 < r2["ridge"] < 0.65, r2  # the numbers explain about half, never the text's half
    for name in ("attention", "summation"):
        assert r2[name] > 0.7, r2
        assert r2[name] > r2["ridge"] + 0.2, r2


def test_training_ends_with_the_best_epoch_weights_and_predicts_without_dropout():
    rng = np.random.default_rng(0)

    def random_set(n):  # 20-word vocabulary, 8 tokens, 2 numbers, on the suite's device
        return tuple(on_device(a) for a in (rng.integers(0, 20, (n, 8)), rng.random((n, 2), dtype=np.float32),
                                            rng.random((n, 1), dtype=np.float32)))

    train_set, val_set = random_set(64), random_set(32)
    args = train_mm.parse_args(["--epochs", "8", "--lr", "0.03", "--stop-patience", "8", "--batch-size", "16"])
    minisum.seed(0)
    model = SummationFusionRegressor(20, seq_len=8, d_model=8, n_features=2, dropout=0.5)
    record = train_mm.fit("summation", model, train_set, val_set, args)
    losses, best_epoch = [h["val_loss"] for h in record["history"]], record["best_epoch"]
    assert losses[-1] > min(losses)  # the run ends past its best epoch, or this test would prove nothing
    assert best_epoch == 1 + losses.index(min(losses))
    pred = train_mm.predict(model, val_set[0], val_set[1], batch_size=16)
    assert np.mean((pred - to_host(val_set[2])[:, 0]) ** 2) == pytest.approx(min(losses), rel=1e-6)
    # dropout 0.5 is off in evaluation: the same inputs give the same predictions
    np.testing.assert_array_equal(pred, train_mm.predict(model, val_set[0], val_set[1], batch_size=16))


def write_fixture_copy(path, edits):
    """The fixture with some cells replaced: edits {(data row from 1, column): value}."""
    with open(FIXTURE, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    for (row, column), value in edits.items():
        rows[row][rows[0].index(column)] = value
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)


def test_non_numeric_rows_are_dropped_and_reported(tmp_path, capsys):
    data = tmp_path / "bad_values.csv"
    write_fixture_copy(data, {(3, "toxicity"): "high", (7, "threat"): "", (9, "identity_attack"): "nan"})
    results = train_mm.main(["--data-file", str(data), "--out-dir", str(tmp_path / "run"), *TINY,
                             "--epochs", "1", "--models", "ridge"])
    assert results["data"]["rows"] == 197
    assert "3, 7, 9" in results["data"]["note"]
    assert "3, 7, 9" in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--text-column", "comment_text"], "missing column.*comment_text.*found are text, toxicity"),
    (["--numeric", "toxicity,insult"], "missing column.*insult"),
    (["--rows", "5"], "5 usable rows, at least 10"),
    (["--synthetic", "100"], "either --synthetic or --data-file"),
    (["--models", "ridge,lstm"], "--models: unknown 'lstm'; choose from ridge, attention, summation"),
    (["--epochs", "0"], "--epochs: must be positive, got 0"),
])
def test_bad_input_is_one_user_error_and_writes_nothing(tmp_path, flags, message):
    out = tmp_path / "run"
    with pytest.raises(UserError, match=message):
        train_mm.main(["--data-file", str(FIXTURE), "--out-dir", str(out), *TINY, *flags])
    assert not out.exists()


def test_gpu_without_cupy_is_a_user_error(tmp_path):
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy is installed: --device gpu may be valid here")
    except ImportError:
        pass
    with pytest.raises(UserError, match="CuPy"):
        train_mm.main(["--data-file", str(FIXTURE), "--device", "gpu", "--out-dir", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


def test_command_line_prints_one_line_and_exits_2_when_the_hub_is_unreachable(tmp_path):
    env = dict(os.environ)
    done = subprocess.run([sys.executable, str(ROOT / "train_mm.py"), "--out-dir", str(tmp_path / "run")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert lines[0].startswith("error: could not fetch") and "--data-file" in lines[0]
    assert not (tmp_path / "run").exists()
