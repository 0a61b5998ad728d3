"""train_lm.py end to end on the tiny WikiText fixture, and the representation analysis.

One module-wide run trains the three variants for two epochs; the other tests resume it,
interrupt it, poison it, sample from it and analyse it. Sizes are tiny (a 300-token BPE,
d 16, 2 layers, 16 samples) so the whole file takes seconds.
"""
import importlib.util
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import train_lm
import minisum
from minisum.checkpoint import read_checkpoint
from minisum.data.gpt2_tokenizer import load_tokenizer, read_tokenizer
from minisum.models import LanguageModel
from minisum.ops import cross_entropy
from minisum.representation import layer_cosine, participation_ratio, pca_2d
from minisum.run import runtime

pytestmark = pytest.mark.needs_engine  # every test here runs code of several tasks

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "lm"
# 16 samples in batches of 4 (4 training steps per epoch), 8 validation samples (2 batches).
# The high rate makes the loss fall visibly in two epochs.
TINY = ["--data-dir", str(FIXTURES), "--tokenizer", "bpe:300", "--d-model", "16", "--layers", "2", "--heads", "2",
        "--context", "32", "--batch-size", "4", "--train-samples", "16", "--valid-samples", "8", "--lr", "1e-2"]
MODELS = ("attention", "summation", "hybrid")


def train(out_dir, *extra):
    train_lm.main(TINY + ["--out-dir", str(out_dir), *extra])


def results(out_dir):
    return json.loads((out_dir / "results.json").read_text())


def weights(path):
    return read_checkpoint(path)["model"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished 2-epoch run of the three variants (shared: tests copy it before changing it)."""
    out_dir = tmp_path_factory.mktemp("lm") / "run"
    train(out_dir, "--epochs", "2")
    return out_dir


def copy_run(run, tmp_path):
    return Path(shutil.copytree(run, tmp_path / "run"))


# ----- a full run -----------------------------------------------------------------------

def test_run_writes_results_checkpoints_and_curves(run):
    report = results(run)
    assert report["config"]["epochs"] == 2 and report["config"]["tokenizer"] == "bpe:300"
    assert report["data"]["vocab_size"] == 300 and report["data"]["train_samples"] == 16
    assert report["paper"]["hybrid"] == [274, 0.23]
    assert report["hardware"]["device"] == os.environ["MINISUM_DEVICE"]  # the suite's, as no --device is given
    assert list(report["models"]) == list(MODELS)
    for name in MODELS:
        record = report["models"][name]
        assert record["status"] == "finished" and [e["epoch"] for e in record["epochs"]] == [1, 2]
        for epoch in record["epochs"]:
            for split in ("train", "valid"):
                assert epoch[f"{split}_ppl"] == pytest.approx(math.exp(epoch[f"{split}_loss"]))
                assert 0 <= epoch[f"{split}_acc"] <= 1
        assert record["epochs"][1]["train_loss"] < record["epochs"][0]["train_loss"]
        ckpt = read_checkpoint(run / f"{name}.npz")
        assert ckpt["config"]["model"]["mixer"] == name and ckpt["config"]["model"]["max_len"] == 32
        assert ckpt["step"] == 8  # 4 steps per epoch
        assert ckpt["extra"]["record"]["epochs"] == record["epochs"]
    assert (run / "loss_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run / "tokenizer.json").is_file()


def test_variants_start_from_the_same_embeddings():
    args = train_lm.parse_args(TINY)
    first = {name: train_lm.build_model(name, args, 300).token_embedding.weight.numpy() for name in MODELS}
    np.testing.assert_array_equal(first["attention"], first["summation"])
    np.testing.assert_array_equal(first["attention"], first["hybrid"])


def test_metrics_follow_the_paper_definitions():
    # Loss: the mean of the batch losses. Accuracy: argmax hits over the non-pad targets.
    meter = train_lm.Meter()
    meter.add(np.float32(1.0), hits=np.int64(2), count=3)  # 3 real targets, 2 hits
    meter.add(np.float32(3.0), hits=np.int64(0), count=2)  # 2 real targets, no hit
    metrics = train_lm.metrics(meter.read())
    assert metrics["loss"] == 2.0 and metrics["ppl"] == pytest.approx(math.exp(2.0))
    assert metrics["acc"] == pytest.approx(2 / 5)


def test_model_loss_counts_argmax_hits_on_real_targets_only():
    minisum.seed(0)
    model = LanguageModel(vocab_size=7, d_model=8, n_layers=1, n_heads=2, max_len=8, mixer="summation")
    ids = np.array([[1, 2, 3, 4], [5, 6, 1, 2]])
    predicted = model(ids).data.argmax(axis=-1)  # (B, T)
    pad = 3
    targets = predicted.copy()
    targets[0, 0] = (targets[0, 0] + 1) % 7  # one miss
    targets[1, 1] = pad  # one pad target, not counted
    loss, hits = model.loss(ids, targets, pad)
    expected_hits = int(((predicted == targets) & (targets != pad)).sum())
    assert int(hits) == expected_hits
    full = cross_entropy(model(ids), targets, ignore_index=pad)
    assert loss.item() == pytest.approx(full.item(), rel=1e-6)


def test_saved_gpt2_tokenizer_gives_gpt2_ids(tmp_path):
    # --resume and --generate read tokenizer.json: it must give the ids training used.
    gpt2_dir = ROOT.parent / "shared" / "data" / "gpt2-tokenizer"
    if not gpt2_dir.is_dir():
        pytest.skip("no GPT-2 tokenizer files in ../shared/data")
    original = load_tokenizer("gpt2", str(gpt2_dir))
    original.save(tmp_path / "tokenizer.json")
    saved = read_tokenizer(tmp_path / "tokenizer.json", "gpt2")
    assert saved.fingerprint() == original.fingerprint()
    text = (FIXTURES / "wiki.valid.tokens").read_text(encoding="utf-8") + " <|endoftext|> héllo"
    assert saved.encode(text) == original.encode(text)
    assert saved.encode(" the") == [262] and (saved.vocab_size, saved.pad_id) == (50257, 50256)


# ----- resume, Ctrl-C, divergence -------------------------------------------------------

def test_resume_of_a_finished_run_trains_nothing(run, tmp_path, capsys):
    out_dir = copy_run(run, tmp_path)
    before = {name: (out_dir / f"{name}.npz").read_bytes() for name in MODELS}
    train(out_dir, "--epochs", "2", "--resume")
    assert {name: (out_dir / f"{name}.npz").read_bytes() for name in MODELS} == before
    assert "nothing to resume" in capsys.readouterr().out
    assert results(out_dir)["models"]["hybrid"]["epochs"] == results(run)["models"]["hybrid"]["epochs"]


def test_resume_continues_to_the_same_model_as_an_uninterrupted_run(run, tmp_path):
    train(tmp_path, "--models", "summation", "--epochs", "1")
    train(tmp_path, "--models", "summation", "--epochs", "2", "--resume")
    record = results(tmp_path)["models"]["summation"]
    assert [e["epoch"] for e in record["epochs"]] == [1, 2]
    # Same batch order and optimizer state: the weights of the straight 2-epoch run.
    resumed, straight = weights(tmp_path / "summation.npz"), weights(run / "summation.npz")
    for name in straight:
        np.testing.assert_allclose(resumed[name], straight[name], rtol=1e-5, atol=1e-6)


def test_ctrl_c_mid_epoch_saves_and_resume_finishes_the_epoch(run, tmp_path, monkeypatch):
    real = train_lm.lm_train_step
    calls = []

    def interrupt_on_the_6th_step(*args, **kwargs):
        # Epoch 1 is 4 training steps: step 6 is epoch 2's second.
        calls.append(1)
        if len(calls) == 6:
            signal.raise_signal(signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_lm, "lm_train_step", interrupt_on_the_6th_step)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path, "--models", "summation", "--epochs", "2")
    saved = read_checkpoint(tmp_path / "summation.npz")
    assert saved["extra"]["partial"]["batches"] == 2 and saved["step"] == 6
    assert results(tmp_path)["models"]["summation"]["status"] == "interrupted"

    monkeypatch.setattr(train_lm, "lm_train_step", real)
    train(tmp_path, "--models", "summation", "--epochs", "2", "--resume")
    resumed, straight = weights(tmp_path / "summation.npz"), weights(run / "summation.npz")
    for name in straight:
        np.testing.assert_allclose(resumed[name], straight[name], rtol=1e-5, atol=1e-6)
    assert read_checkpoint(tmp_path / "summation.npz")["step"] == 8


def test_a_diverging_model_stops_alone_and_keeps_its_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    real = train_lm.lm_train_step

    def poison_summation_in_epoch_2(model, optimizer, *args):
        if model.config["mixer"] == "summation" and optimizer.step_count == 5:  # epoch 2's first step
            model.output_projection.bias.data[:] = np.nan
        return real(model, optimizer, *args)

    monkeypatch.setattr(train_lm, "lm_train_step", poison_summation_in_epoch_2)
    with pytest.raises(SystemExit) as exit_info:
        runtime.run_main(lambda: train(tmp_path, "--models", "summation,hybrid", "--epochs", "2"))
    assert exit_info.value.code == runtime.EXIT_DIVERGED
    report = results(tmp_path)["models"]
    assert report["summation"]["status"] == "diverged" and len(report["summation"]["epochs"]) == 1
    assert report["hybrid"]["status"] == "finished" and len(report["hybrid"]["epochs"]) == 2
    kept = read_checkpoint(tmp_path / "summation.npz")
    assert len(kept["extra"]["record"]["epochs"]) == 1
    assert all(np.isfinite(w).all() for w in kept["model"].values())
    captured = capsys.readouterr()
    assert "summation: the loss became nan" in captured.out and "last good checkpoint (epoch 1)" in captured.out
    assert captured.err.strip().splitlines() == [captured.err.strip()]  # one line
    assert captured.err.startswith("error: summation diverged")
    table_row = next(line for line in captured.out.splitlines() if line.startswith("summation  diverged"))
    assert "diverged" in table_row and table_row.split()[4] == "-"  # no metric reported from it


# ----- will it fit? ---------------------------------------------------------------------

@pytest.mark.parametrize("mixer", MODELS)
def test_parameters_are_counted_without_building_the_model(mixer):
    for vocab, d, layers, context in ((300, 16, 2, 32), (1000, 24, 3, 10)):
        model = LanguageModel(vocab, d, layers, 2, max_len=context, mixer=mixer)
        assert train_lm.lm_parameters(vocab, d, layers, context, mixer) == model.num_parameters()


@pytest.mark.parametrize("mixer", MODELS)
def test_the_memory_estimate_is_within_a_quarter_of_a_steps_measured_peak(mixer):
    """NumPy's allocations, traced from before the model is built through two steps (the first
    makes AdamW's moments): the peak is what a step really holds, against the pre-flight estimate."""
    vocab, args = 2048, train_lm.parse_args(["--d-model", "64", "--layers", "2", "--heads", "4", "--batch-size", "8",
                                             "--context", "256"])
    estimate = train_lm.memory.step_bytes(*train_lm.step_memory(args, vocab, mixer))
    ids = np.random.default_rng(0).integers(0, vocab, (8, 256))
    tracemalloc.start()
    try:
        model = LanguageModel(vocab, 64, 2, 4, max_len=256, mixer=mixer)
        optimizer = train_lm.AdamW(model.parameters(), lr=1e-4)
        for _ in range(2):
            train_lm.lm_train_step(model, optimizer, ids[:, :-1], ids[:, 1:], None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert 0.75 * peak <= estimate <= 1.25 * peak


# ----- generation and analysis ----------------------------------------------------------

def test_generate_prints_the_prompt_and_its_continuation(run, capsys):
    argv = ["--out-dir", str(run), "--models", "hybrid", "--generate", "The game", "--max-new-tokens", "8"]
    train_lm.main(argv + ["--temperature", "0"])
    greedy = capsys.readouterr().out
    assert greedy.startswith("The game") and len(greedy.rstrip("\n")) > len("The game")
    train_lm.main(argv + ["--temperature", "0"])
    assert capsys.readouterr().out == greedy  # greedy decoding is deterministic


def test_analyze_writes_the_representation_figure(run, tmp_path):
    out_dir = copy_run(run, tmp_path)
    train(out_dir, "--epochs", "2", "--resume", "--analyze")
    assert (out_dir / "representations.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curves = results(out_dir)["representation"]
    assert list(curves) == list(MODELS)
    for curve in curves.values():  # embedding + 2 blocks: 2 transitions, 3 layers
        assert len(curve["layer_cosine"]) == 2 and len(curve["participation_ratio"]) == 3
        assert all(-1 <= c <= 1 for c in curve["layer_cosine"])
        assert all(1 <= r <= 16 for r in curve["participation_ratio"])


# ----- bad input ------------------------------------------------------------------------

def fail(argv, capsys):
    """Run the script's main as `python train_lm.py` would; returns (exit status, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        runtime.run_main(lambda: train_lm.main(argv))
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--models", "attention,transformer"], "argument --models: unknown 'transformer'; choose from attention, "
                                           "summation, hybrid"),
    (["--models", "hybrid,hybrid"], "give distinct names"),
    (["--dataset", "wikitext103"], "choose one of wikitext2, cmu_books, imdb, ag_news"),
    (["--d-model", "30", "--heads", "4"], "--d-model 30 is not divisible by --heads 4"),
    (["--context", "1"], "argument --context: must be at least 2, got 1"),
    (["--epochs", "0"], "argument --epochs: must be positive, got 0"),
    (["--lr", "-1"], "argument --lr: must be positive, got -1"),
    (["--epochs", "two"], "argument --epochs: 'two' is not a whole number"),
    (["--tokenizer", "words"], "unknown tokenizer 'words'"),
    (["--resume"], "nothing to resume"),
    (["--generate", "The game"], "no checkpoint"),
    ([], "holds another run (results.json): continue it with --resume, choose another --out-dir, or add "
         "--overwrite"),
])
def test_bad_input_fails_in_one_line_and_writes_nothing(tmp_path, capsys, extra, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "results.json").write_text("an earlier run")
    status, err = fail(TINY + ["--out-dir", str(out_dir)] + [a.format(empty=empty) for a in extra], capsys)
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1
    assert sorted(os.listdir(out_dir)) == ["results.json"]
    assert (out_dir / "results.json").read_text() == "an earlier run"


def test_resume_with_other_flags_names_them(run, tmp_path, capsys):
    out_dir = copy_run(run, tmp_path)
    status, err = fail(TINY + ["--out-dir", str(out_dir), "--resume", "--d-model", "32"], capsys)
    assert status == 2 and "was made with --d-model 16, not 32: drop --d-model to continue it" in err
    assert (out_dir / "attention.npz").read_bytes() == (run / "attention.npz").read_bytes()


def test_generate_longer_than_the_positional_table(run, capsys):
    status, err = fail(["--out-dir", str(run), "--generate", "The game", "--max-new-tokens", "40"], capsys)
    assert status == 2 and "positional table of 32 positions" in err


def test_gpu_without_cupy_is_one_line_from_the_command_line(tmp_path):
    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed: --device gpu may well work here")
    command = [sys.executable, str(ROOT / "train_lm.py"), "--device", "gpu", "--out-dir", str(tmp_path / "o")]
    done = subprocess.run(command, cwd=tmp_path, env=os.environ, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "CuPy is not installed" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


# ----- the representation measures -------------------------------------------------------

def test_participation_ratio_counts_the_directions_used():
    rng = np.random.default_rng(0)
    assert participation_ratio(rng.standard_normal((20000, 8))) == pytest.approx(8, rel=0.02)  # isotropic
    line = rng.standard_normal((500, 1)) * rng.standard_normal((1, 8))  # rank 1
    assert participation_ratio(line) == pytest.approx(1.0)
    # Variances 6 and 2 along two axes (covariance diag(6, 2) / 3 by hand): (6 + 2)^2 / (36 + 4) = 1.6.
    a = math.sqrt(3)
    assert participation_ratio([[a, 0], [-a, 0], [0, 1], [0, -1]]) == pytest.approx(1.6)
    assert participation_ratio(np.ones((5, 3))) == 0.0


def test_pca_2d_recovers_the_plane_of_largest_variance():
    rng = np.random.default_rng(1)
    basis, _ = np.linalg.qr(rng.standard_normal((6, 6)))  # orthonormal columns
    t, s = 10 * rng.standard_normal(400), 3 * rng.standard_normal(400)
    t, s = t - t.mean(), s - s.mean()
    s -= (s @ t) / (t @ t) * t  # uncorrelated with t: then t and s are exactly the principal coordinates
    points = np.outer(t, basis[:, 0]) + np.outer(s, basis[:, 1]) + 5.0
    coords = pca_2d(points)
    assert coords.shape == (400, 2)
    # Up to the arbitrary sign of each direction.
    np.testing.assert_allclose(np.abs(coords), np.abs(np.stack([t, s], axis=1)), atol=1e-8)


def test_layer_cosine_between_consecutive_layers():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((50, 4))
    orthogonal = np.stack([-x[:, 1], x[:, 0], -x[:, 3], x[:, 2]], axis=1)  # row by row perpendicular to x
    np.testing.assert_allclose(layer_cosine([x, 3 * x, -x, orthogonal]), [1, -1, 0], atol=1e-12)
