"""Stopping and resuming, the same for the three scripts: SIGTERM (what `kill` and schedulers
send) in the middle of an epoch saves a checkpoint at the batch boundary and exits 143, and
`--resume` alone then finishes the run with the weights and metrics of an uninterrupted
run, bit for bit. Also: --overwrite moves an earlier run aside, --resume of some models
keeps the records of the others, and MINISUM_DEVICE chooses the device.
"""
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import train_cls
import train_lm
import train_mm
from minisum import backend
from minisum.checkpoint import read_checkpoint
from minisum.run import runtime
from test_bad_input import TINY

pytestmark = pytest.mark.needs_engine

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = {"lm": train_lm, "cls": train_cls, "mm": train_mm}
# Two epochs or three, and the models to compare.
FLAGS = {"lm": ["--epochs", "2"], "cls": ["--epochs", "3", "--models", "summation,attention"],
         "mm": ["--epochs", "3", "--models", "ridge,attention,summation"]}
NEURAL = {"lm": ("summation", "hybrid"), "cls": ("summation", "attention"), "mm": ("attention", "summation")}
# Everything in results.json must be equal but times and the checkpoints' paths.
TIMES = {"checkpoint", "seconds", "train_seconds", "valid_seconds", "inference_seconds", "train_tokens_per_s",
         "valid_tokens_per_s", "train_seconds_per_epoch", "wall_seconds"}


def run_folder(script, out):
    return out / "ag_news" if script == "cls" else out


def sigterm_at_step(monkeypatch, script, step):
    """Deliver a real SIGTERM to this process just before training step `step` (from 1)."""
    calls = []

    def count():
        calls.append(1)
        if len(calls) == step:
            signal.raise_signal(signal.SIGTERM)

    if script == "lm":
        real = train_lm.lm_train_step
        monkeypatch.setattr(train_lm, "lm_train_step", lambda *a: (count(), real(*a))[1])
    elif script == "cls":
        real = train_cls.clip_grad_value
        monkeypatch.setattr(train_cls, "clip_grad_value", lambda *a: (count(), real(*a))[1])
    else:
        real = train_mm.progress_bar

        def counted(steps, done, desc):
            for rows in real(steps, done, desc):
                count()
                yield rows
        monkeypatch.setattr(train_mm, "progress_bar", counted)


def guarded(main, argv):
    with pytest.raises(SystemExit) as exit_info:
        runtime.run_main(lambda: main(argv))
    return exit_info.value.code


def without_times(value):
    if isinstance(value, dict):
        return {k: without_times(v) for k, v in value.items() if k not in TIMES}
    if isinstance(value, list):
        return [without_times(v) for v in value]
    return value


def records(folder):
    return without_times(json.loads((folder / "results.json").read_text())["models"])


@pytest.mark.parametrize("script, step", [("lm", 6), ("cls", 3), ("mm", 3)])
def test_sigterm_mid_epoch_then_resume_equals_an_uninterrupted_run(script, step, tmp_path, monkeypatch, capsys):
    if script == "mm" and backend.get_device() == "gpu":
        pytest.skip("dropout draws from CuPy's generator there, which checkpoints do not keep (docs/runs.md)")
    main, flags = SCRIPTS[script].main, TINY[script] + FLAGS[script]
    straight = tmp_path / "straight"
    main(flags + ["--out-dir", str(straight)])

    cut = tmp_path / "cut"
    sigterm_at_step(monkeypatch, script, step)
    assert guarded(main, flags + ["--out-dir", str(cut)]) == 143
    err = capsys.readouterr().err
    assert "Traceback" not in err and "continue with --resume" in err
    first = run_folder(script, cut) / f"{NEURAL[script][0]}.npz"
    saved = read_checkpoint(first)
    assert saved["extra"]["record"]["status"] == "interrupted"
    assert saved["extra"]["partial"]["batches"] >= 1  # stopped inside an epoch

    monkeypatch.undo()
    main(["--resume", "--out-dir", str(cut)] + (["--dataset", "ag_news"] if script == "cls" else []))
    a, b = run_folder(script, straight), run_folder(script, cut)
    for name in NEURAL[script]:
        ours, theirs = read_checkpoint(b / f"{name}.npz"), read_checkpoint(a / f"{name}.npz")
        assert ours["step"] == theirs["step"]
        for key in theirs["model"]:
            np.testing.assert_array_equal(ours["model"][key], theirs["model"][key], err_msg=f"{name} {key}")
    assert records(b) == records(a)


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_signal_from_outside_exits_with_its_status_and_a_checkpoint(tmp_path, signum, status):
    """The real command line: Ctrl-C or `kill` while it trains, then the state it saved."""
    command = [sys.executable, str(ROOT / "train_lm.py"), *TINY["lm"], "--models", "summation", "--epochs", "100000",
               "--out-dir", str(tmp_path)]
    process = subprocess.Popen(command, cwd=tmp_path, env=os.environ, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (tmp_path / "summation.npz").exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert (tmp_path / "summation.npz").exists(), "no first checkpoint within 60 s"
    process.send_signal(signum)
    _, err = process.communicate(timeout=30)
    assert process.returncode == status, err
    assert "Traceback" not in err and "--resume" in err
    assert read_checkpoint(tmp_path / "summation.npz")["extra"]["record"]["status"] == "interrupted"


def test_overwrite_moves_the_earlier_run_aside(tmp_path):
    flags = TINY["lm"] + ["--models", "summation", "--out-dir", str(tmp_path)]
    train_lm.main(flags)
    (tmp_path / "notes.txt").write_text("mine")  # not the run's: stays where it is
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    train_lm.main(flags + ["--overwrite", "--seed", "1"])
    aside = tmp_path / "earlier-run-1"
    assert {p.name: p.read_bytes() for p in aside.iterdir()} == {k: v for k, v in before.items() if k != "notes.txt"}
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert json.loads((tmp_path / "run.json").read_text())["flags"]["seed"] == 1


def test_resume_of_some_models_keeps_the_records_of_the_others(tmp_path):
    flags = TINY["lm"] + ["--out-dir", str(tmp_path)]
    train_lm.main(flags)  # summation and hybrid, 1 epoch
    train_lm.main(["--resume", "--out-dir", str(tmp_path), "--models", "hybrid", "--epochs", "2"])
    report = json.loads((tmp_path / "results.json").read_text())["models"]
    assert len(report["summation"]["epochs"]) == 1 and len(report["hybrid"]["epochs"]) == 2


def test_resume_of_the_first_model_of_a_run_stopped_before_the_second(tmp_path, monkeypatch, capsys):
    sigterm_at_step(monkeypatch, "lm", 2)
    assert guarded(train_lm.main, TINY["lm"] + ["--out-dir", str(tmp_path)]) == 143
    monkeypatch.undo()
    train_lm.main(["--resume", "--out-dir", str(tmp_path), "--models", "summation"])
    report = json.loads((tmp_path / "results.json").read_text())["models"]
    assert report["summation"]["status"] == "finished" and report["hybrid"]["status"] == "pending"
    assert "hybrid     pending" in capsys.readouterr().out


def test_resume_alone_analyzes_a_finished_run(tmp_path, capsys):
    train_lm.main(TINY["lm"] + ["--out-dir", str(tmp_path)])
    before = (tmp_path / "summation.npz").read_bytes()
    train_lm.main(["--resume", "--analyze", "--out-dir", str(tmp_path)])
    assert (tmp_path / "representations.png").is_file() and "nothing to resume" in capsys.readouterr().out
    assert (tmp_path / "summation.npz").read_bytes() == before


def test_minisum_device_chooses_the_device_when_no_flag_does(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINISUM_DEVICE", "gpu")
    if importlib.util.find_spec("cupy") is None:
        code = guarded(train_mm.main, TINY["mm"] + ["--out-dir", str(tmp_path / "gpu")])
        assert code == 2 and "CuPy is not installed" in capsys.readouterr().err
        assert not (tmp_path / "gpu").exists()
    train_mm.main(TINY["mm"] + ["--device", "cpu", "--models", "ridge", "--out-dir", str(tmp_path / "cpu")])
    assert backend.get_device() == "cpu"  # the flag wins over the variable
