"""train_cls.py: end to end on tiny data in each input format, the two heads, results.json,
the --quick preset, and bad input failing with one line before anything is written.

IMDB and 20 Newsgroups inputs are written into tmp_path (a handful of documents); AG News
and Reuters use the committed fixtures in tests/fixtures/cls/.
"""
import gzip
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

import minisum
import train_cls
from conftest import on_device
from minisum.run import runtime

pytestmark = pytest.mark.needs_engine  # every test here runs code of several tasks

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "cls"
SHARED_DATA = ROOT.parent / "shared" / "data"
# vocabulary 50, length 16, d 8, 2 heads of size 4, batch 4, 2 epochs
TINY = ["--vocab-size", "50", "--seq-len", "16", "--d-model", "8", "--heads", "2", "--head-dim", "4",
        "--batch-size", "4", "--epochs", "2"]


def write_imdb(folder, train, test):
    """train/test: lists of (text, label) written as IMDB JSON Lines."""
    folder.mkdir(exist_ok=True)
    for name, rows in (("train", train), ("test", test)):
        with gzip.open(folder / f"{name}.jsonl.gz", "wt", encoding="utf-8") as f:
            f.writelines(json.dumps({"text": text, "label": label}) + "\n" for text, label in rows)
    return folder


def imdb_dir(tmp_path):
    train = [("A good, good film.", 1), ("Bad acting.", 0), ("Good fun", 1), ("So bad", 0), ("good", 1), ("bad!", 0)]
    return write_imdb(tmp_path / "imdb", train, [("good plot", 1), ("bad plot", 0), ("Good", 1), ("Bad", 0)])


def newsgroups_dir(tmp_path):
    messages = {
        "20news-bydate-train/sci.space/1": "From: a\n\nThe orbit of the moon.\n",
        "20news-bydate-train/sci.space/2": "From: b\n\nLaunch the rocket.\n",
        "20news-bydate-train/rec.autos/3": "From: c\n\nMy car engine.\n",
        "20news-bydate-train/rec.autos/4": "From: d\n\nNew tires for the car.\n",
        "20news-bydate-train/alt.atheism/5": "From: e\n\nGod and belief.\n",
        "20news-bydate-test/sci.space/6": "From: f\n\nRocket to the moon.\n",
        "20news-bydate-test/rec.autos/7": "From: g\n\nA fast car.\n",
    }
    folder = tmp_path / "20newsgroups"
    folder.mkdir()
    with tarfile.open(folder / "20news-bydate.tar.gz", "w:gz") as tar:
        for name, text in messages.items():
            data = text.encode("latin-1")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return folder


def reuters_dir(tmp_path):
    folder = tmp_path / "reuters"
    folder.mkdir()
    with tarfile.open(folder / "reuters21578.tar.gz", "w:gz") as tar:
        tar.add(FIXTURES / "reuters" / "reut2-000.sgm", arcname="reut2-000.sgm")
    return folder


def ag_news_dir(tmp_path):
    return FIXTURES / "ag_news"


# dataset: (folder maker, train texts, test texts, classes). Counts from the fixtures:
# AG News: train_head4.csv has 4 rows, test.csv 2; Reuters: 7 wires with a topic, 5 topics,
# int(7 * 0.8) = 5 for training; 20 Newsgroups: 5 + 2 messages in 3 groups.
DATASETS = {
    "imdb": (imdb_dir, 6, 4, 2),
    "20newsgroups": (newsgroups_dir, 5, 2, 3),
    "ag_news": (ag_news_dir, 4, 2, 4),
    "reuters": (reuters_dir, 5, 2, 5),
}


def keras_parameter_count(model, classes, vocab=50, seq=16, d=8, heads=2, head_dim=4):
    """Parameters as Keras counts them for docs/paper.md section 2's layers."""
    units = 1 if classes == 2 else classes
    common = vocab * d + seq * d + d * units + units  # embedding, positions, output Dense
    if model == "summation":
        return common + d * d  # Dense without bias
    inner = heads * head_dim
    return common + 3 * (d * inner + inner) + inner * d + d  # q, k, v and output projections


@pytest.mark.parametrize("dataset", DATASETS)
def test_end_to_end_on_each_input_format(dataset, tmp_path):
    make, n_train, n_test, classes = DATASETS[dataset]
    out = tmp_path / "runs"
    report = train_cls.main(["--dataset", dataset, "--data-dir", str(make(tmp_path)), "--out-dir", str(out), *TINY])
    saved = json.loads((out / dataset / "results.json").read_text())
    assert saved == json.loads(json.dumps(report))  # the file holds what main returned
    assert (saved["data"]["n_train"], saved["data"]["n_test"], len(saved["data"]["classes"])) == (n_train, n_test,
                                                                                                   classes)
    assert saved["config"]["dataset"] == dataset and saved["config"]["lr"] == 1e-4
    assert saved["config"]["clip_value"] == 1.0 and saved["config"]["models"] == ["summation", "attention"]
    assert saved["hardware"]["device"] == os.environ["MINISUM_DEVICE"]  # the suite's, as no --device is given
    for name, r in saved["models"].items():
        assert r["parameters"] == keras_parameter_count(name, classes)
        history = r["history"]
        assert [h["epoch"] for h in history] == [1, 2]
        for h in history:
            assert math.isfinite(h["loss"]) and math.isfinite(h["val_loss"])
            # accuracy = hits / count: a whole number of hits
            assert h["val_accuracy"] * n_test == pytest.approx(round(h["val_accuracy"] * n_test))
            assert h["accuracy"] * n_train == pytest.approx(round(h["accuracy"] * n_train))
            assert h["train_seconds"] > 0 and h["inference_seconds"] > 0
        assert r["best_val_accuracy"] == max(h["val_accuracy"] for h in history)
        assert history[r["best_epoch"] - 1]["val_accuracy"] == r["best_val_accuracy"]
    s, a = saved["models"]["summation"], saved["models"]["attention"]
    assert saved["speedup"]["train"] == pytest.approx(a["train_seconds_per_epoch"] / s["train_seconds_per_epoch"])
    assert saved["speedup"]["inference"] == pytest.approx(a["inference_seconds"] / s["inference_seconds"])
    assert (out / dataset / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_both_models_learn_a_separable_task(tmp_path, capsys):
    """'good' marks class 1 and 'bad' class 0: with a larger learning rate both models
    must reach 100% on held-out texts, and the training loss must fall."""
    words = ["plot", "actors", "music", "ending", "film", "story"]
    train = [(f"the {w} was {tone}", int(tone == "good")) for w in words for tone in ("good", "bad")]
    test = [("good music and story", 1), ("bad ending", 0), ("the actors were good", 1), ("bad bad film", 0)]
    folder = write_imdb(tmp_path / "imdb", train, test)
    report = train_cls.main(["--dataset", "imdb", "--data-dir", str(folder), "--out-dir", str(tmp_path), *TINY,
                             "--epochs", "25", "--lr", "0.01"])
    for name, r in report["models"].items():
        assert r["best_val_accuracy"] == 1.0, name
        assert r["history"][-1]["loss"] < 0.5 * r["history"][0]["loss"], name
    assert "summation epoch 25/25" in capsys.readouterr().out


def test_keras_adam_and_clipping_before_every_step(tmp_path, monkeypatch):
    adams, clips = [], []

    class RecordingAdamW(train_cls.AdamW):
        def __init__(self, params, **kwargs):
            adams.append(kwargs)
            super().__init__(params, **kwargs)

    clip_grad_value = train_cls.clip_grad_value

    def recording_clip(params, clip):
        clips.append(clip)
        clip_grad_value(params, clip)

    monkeypatch.setattr(train_cls, "AdamW", RecordingAdamW)
    monkeypatch.setattr(train_cls, "clip_grad_value", recording_clip)
    train_cls.main(["--dataset", "ag_news", "--data-dir", str(FIXTURES / "ag_news"), "--out-dir", str(tmp_path),
                    *TINY, "--batch-size", "3", "--clip-value", "0.5"])
    assert adams == [{"lr": 1e-4, "eps": 1e-7, "weight_decay": 0.0, "eps_style": "keras"}] * 2  # one per model
    # 4 training texts in batches of 3: 2 steps an epoch, 2 epochs, 2 models
    assert clips == [0.5] * 8


def test_binary_head_is_one_sigmoid_unit():
    model = train_cls.build_model("summation", train_cls.parse_args([*TINY]), n_classes=2)
    assert model(minisum.tensor(np.ones((3, 16), dtype=np.int64))).shape == (3, 1)
    # logits 0, 2, -1 against labels 1, 0, 0: losses log(1 + e^-0), log(1 + e^2), log(1 + e^-1);
    # predictions (logit > 0) 0, 1, 0, so only the last is right.
    logits = minisum.tensor(np.array([[0.0], [2.0], [-1.0]], dtype=np.float32))
    loss, hits = train_cls.loss_and_hits(logits, on_device([1, 0, 0]))
    expected = (math.log(2) + math.log1p(math.e ** 2) + math.log1p(math.e ** -1)) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert hits == 1


def test_multiclass_head_is_softmax_over_classes():
    model = train_cls.build_model("attention", train_cls.parse_args([*TINY]), n_classes=5)
    assert model(minisum.tensor(np.ones((3, 16), dtype=np.int64))).shape == (3, 5)
    # row 1: uniform over 3 classes, loss log 3, argmax 0 (first of ties) != 2;
    # row 2: logits 1, 2, 3 against class 2: loss log(e + e^2 + e^3) - 3, argmax 2 is right.
    logits = minisum.tensor(np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]], dtype=np.float32))
    loss, hits = train_cls.loss_and_hits(logits, on_device([2, 2]))
    expected = (math.log(3) + math.log(math.e + math.e ** 2 + math.e ** 3) - 3) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert hits == 1


def test_defaults_are_the_papers_and_quick_yields_to_explicit_flags():
    args = train_cls.parse_args([])
    assert (args.dataset, args.vocab_size, args.seq_len, args.d_model, args.heads, args.head_dim) == (
        "20newsgroups", 10000, 256, 256, 4, 256)
    assert (args.batch_size, args.lr, args.clip_value, args.epochs) == (64, 1e-4, 1.0, 20)
    assert args.models == ["summation", "attention"]
    quick = train_cls.parse_args(["--quick", "--epochs", "1", "--seq-len", "32"])
    assert (quick.epochs, quick.seq_len) == (1, 32)  # explicit flags win
    assert quick.d_model == train_cls.QUICK["d_model"] and quick.train_limit == train_cls.QUICK["train_limit"]


def test_limits_resplit_and_single_model(tmp_path):
    report = train_cls.main(["--dataset", "ag_news", "--data-dir", str(FIXTURES / "ag_news"), "--resplit", "0.5",
                             "--models", "attention", "--out-dir", str(tmp_path), *TINY, "--epochs", "1"])
    # 4 + 2 texts pooled, half of them for testing
    assert (report["data"]["n_train"], report["data"]["n_test"]) == (3, 3)
    assert any("--resplit" in note for note in report["data"]["notes"])
    assert list(report["models"]) == ["attention"] and report["speedup"] is None
    folder = imdb_dir(tmp_path)
    report = train_cls.main(["--dataset", "imdb", "--data-dir", str(folder), "--train-limit", "3",
                             "--test-limit", "1", "--out-dir", str(tmp_path / "a"), *TINY, "--epochs", "1"])
    assert (report["data"]["n_train"], report["data"]["n_test"]) == (3, 1)
    # --quick limits the texts; 0 lifts the limit again
    report = train_cls.main(["--quick", "--dataset", "imdb", "--data-dir", str(folder), "--train-limit", "0",
                             "--test-limit", "2", "--out-dir", str(tmp_path / "b"), *TINY, "--epochs", "1"])
    assert (report["data"]["n_train"], report["data"]["n_test"]) == (6, 2)


def error_line(err):
    """The one line of an error on stderr. Only the progress bars that `datasets` draws while
    it reads IMDB's JSON ("Generating train split: ...") may come before it."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and lines, err
    assert all(line.startswith("Generating") for line in lines[:-1]), err
    return lines[-1]


def run_guarded(argv, capsys):
    """What `python train_cls.py ARGV` does, in process: (exit status, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        runtime.run_main(lambda: train_cls.main(argv))
    return exit_info.value.code, capsys.readouterr().err


def malformed_ag_news(tmp_path):
    folder = tmp_path / "ag"
    shutil.copytree(FIXTURES / "ag_news", folder)
    with open(folder / "test.csv", "a", encoding="utf-8") as f:
        f.write('"9","no such class","x"\n')  # line 3
    return ["--dataset", "ag_news", "--data-dir", str(folder)]


def only_punctuation(tmp_path):
    folder = write_imdb(tmp_path / "imdb", [("!!!", 1), ("...?", 0)], [("fine", 1)])
    return ["--dataset", "imdb", "--data-dir", str(folder)]


BAD_INPUT = {
    "unknown dataset": (lambda tmp: ["--dataset", "mnist"], ["invalid choice", "imdb", "20newsgroups", "reuters"]),
    "unknown model": (lambda tmp: ["--models", "summation,lstm"], ["'lstm'", "attention"]),
    "zero epochs": (lambda tmp: ["--epochs", "0"], ["--epochs", "positive"]),
    "one-word vocabulary": (lambda tmp: ["--vocab-size", "1"], ["--vocab-size", "at least 2"]),
    "missing files": (lambda tmp: ["--dataset", "imdb", "--data-dir", str(tmp)], ["train.jsonl.gz"]),
    "malformed file": (malformed_ag_news, ["test.csv line 3"]),
    "empty texts": (only_punctuation, ["all 2 training texts are empty"]),
    "no hub": (lambda tmp: ["--dataset", "ag_news"], ["could not fetch", "--data-dir"]),
}


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_is_one_line_and_writes_nothing(case, tmp_path, capsys):
    make_argv, expected = BAD_INPUT[case]
    out = tmp_path / "runs"
    status, err = run_guarded([*TINY, "--out-dir", str(out), *make_argv(tmp_path)], capsys)  # the case's flags win
    assert status == 2
    assert error_line(err).startswith("error: ")
    for text in expected:
        assert text in error_line(err)
    assert not out.exists()


def test_gpu_without_a_gpu_is_one_line(tmp_path, capsys):
    try:
        minisum.backend.device_module("gpu")
        pytest.skip("a GPU is available here")
    except minisum.UserError:
        pass
    status, err = run_guarded(["--device", "gpu", "--out-dir", str(tmp_path / "runs")], capsys)
    assert status == 2 and err.count("\n") == 1 and "GPU" in error_line(err)
    assert not (tmp_path / "runs").exists()


def test_script_exits_cleanly_from_the_command_line(tmp_path):
    """The real entry point: a bad dataset name gives status 2, one line, no traceback."""
    result = subprocess.run([sys.executable, str(ROOT / "train_cls.py"), "--dataset", "mnist"], cwd=tmp_path,
                            capture_output=True, text=True, env=os.environ, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "imdb" in result.stderr and not (tmp_path / "runs").exists()


@pytest.mark.skipif(not (SHARED_DATA / "ag_news" / "test.csv").is_file(), reason="../shared/data not present")
def test_real_ag_news_with_its_partial_train_file(tmp_path):
    report = train_cls.main(["--dataset", "ag_news", "--data-dir", str(SHARED_DATA), "--resplit", "0.2",
                             "--train-limit", "64", "--test-limit", "32", "--out-dir", str(tmp_path), *TINY,
                             "--epochs", "1"])
    # 581 + 7,600 rows pooled, then the limits
    assert (report["data"]["n_train"], report["data"]["n_test"], len(report["data"]["classes"])) == (64, 32, 4)
    notes = " ".join(report["data"]["notes"])
    assert "train_head581.csv" in notes and "8181 texts" in notes
