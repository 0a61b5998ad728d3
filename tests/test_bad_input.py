"""Bad input to the three training scripts, one table: each case must end with its exit
status, exactly one line on stderr (`error: ...`), no traceback, and the files of an earlier
run in the folder byte for byte as they were.

Each script has one tiny finished run (module-wide); every case runs against a copy of it,
in process through the scripts' own guard (runtime.run_main), as `python train_*.py` would.
"""
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import train_cls
import train_lm
import train_mm
from minisum.checkpoint import read_checkpoint
from minisum.run import runtime

pytestmark = pytest.mark.needs_engine

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SCRIPTS = {"lm": train_lm, "cls": train_cls, "mm": train_mm}
# Tiny models on the committed fixtures; the flags that every case of a script starts from.
TINY = {
    "lm": ["--data-dir", str(FIXTURES / "lm"), "--tokenizer", "bpe:300", "--d-model", "16", "--layers", "2",
           "--heads", "2", "--context", "32", "--batch-size", "4", "--train-samples", "16", "--valid-samples", "8",
           "--lr", "1e-2", "--models", "summation,hybrid", "--epochs", "1"],
    "cls": ["--dataset", "ag_news", "--data-dir", str(FIXTURES / "cls" / "ag_news"), "--vocab-size", "50",
            "--seq-len", "16", "--d-model", "8", "--heads", "2", "--head-dim", "4", "--batch-size", "2",
            "--epochs", "1"],
    "mm": ["--data-file", str(FIXTURES / "mm" / "synthetic_200.csv"), "--seq-len", "16", "--d-model", "8",
           "--head-dim", "4", "--max-tokens", "50", "--epochs", "1"],
}
HUGE = "100000"  # a length whose attention scores need terabytes
TWO = 2  # runtime.EXIT_USER_ERROR
THREE = runtime.EXIT_DIVERGED


@dataclass
class Case:
    script: str
    flags: list  # after TINY (later flags win); "{run}" is the earlier run's folder, "{tmp}" a scratch folder
    message: str  # a part of the one line on stderr
    status: int = TWO
    out_dir: str = "{run}"
    env: dict = field(default_factory=dict)
    prepare: object = None  # prepare(run_folder, tmp): damage a copy of the earlier run first


def lm_run(path):
    return path


def cls_run(path):
    return path / "ag_news"  # train_cls writes to OUT_DIR/DATASET


def edit_checkpoint(path, **entries):
    """Rewrite some entries of an .npz checkpoint (config, extra as JSON text or objects)."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    for key, value in entries.items():
        arrays[key] = np.asarray(value if isinstance(value, str) else json.dumps(value))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def checkpoint_field(name, change):
    """prepare(): change(ckpt's config, extra) in place in checkpoint `name` of the run."""
    def prepare(run, tmp):
        path = run / name
        ckpt = read_checkpoint(path)
        change(ckpt["config"], ckpt["extra"])
        edit_checkpoint(path, config=ckpt["config"], extra=ckpt["extra"])
    return prepare


def write(name, text):
    def prepare(run, tmp):
        (run / name).write_text(text)
    return prepare


def run_flag(key, value):
    """prepare(): one of the run's saved flags in run.json changed."""
    def prepare(run, tmp):
        saved = json.loads((run / "run.json").read_text())
        saved["flags"][key] = value
        (run / "run.json").write_text(json.dumps(saved))
    return prepare


def truncate(name):
    def prepare(run, tmp):
        data = (run / name).read_bytes()
        (run / name).write_bytes(data[: len(data) // 2])
    return prepare


def other_tokenizer(run, tmp):
    """tokenizer.json of another bpe:300 (trained on other text): other ids, another fingerprint."""
    from minisum.data.gpt2_tokenizer import load_tokenizer
    load_tokenizer("bpe:300", None, ["completely different words " * 50, "zebra quartz " * 80]).save(
        run / "tokenizer.json")


def other_ag_news(run, tmp):
    """A copy of the AG News fixture with other words: the run's vocabulary no longer matches."""
    folder = Path(shutil.copytree(FIXTURES / "cls" / "ag_news", tmp / "ag_other"))
    rows = (folder / "train_head4.csv").read_text().splitlines()
    (folder / "train_head4.csv").write_text("\n".join(r.replace("a", "o") for r in rows) + "\n")


def a_file(run, tmp):
    (tmp / "a_file").write_text("not a folder")


CASES = {
    # --- train_lm.py: numbers, names, sizes
    "lm negative seed": Case("lm", ["--seed", "-1"], "argument --seed: must be at least 0, got -1"),
    "lm nan lr": Case("lm", ["--lr", "nan"], "argument --lr: must be a finite number, got nan"),
    "lm inf lr": Case("lm", ["--lr", "inf"], "argument --lr: must be a finite number, got inf"),
    "lm zero lr": Case("lm", ["--lr", "0"], "argument --lr: must be positive, got 0"),
    "lm negative lr": Case("lm", ["--lr", "-0.001"], "argument --lr: must be positive"),
    "lm text lr": Case("lm", ["--lr", "fast"], "argument --lr: 'fast' is not a number"),
    "lm negative weight decay": Case("lm", ["--weight-decay", "-0.1"], "argument --weight-decay: must be at least 0"),
    "lm nan weight decay": Case("lm", ["--weight-decay", "nan"], "argument --weight-decay: must be a finite number"),
    "lm zero epochs": Case("lm", ["--epochs", "0"], "argument --epochs: must be positive, got 0"),
    "lm fractional epochs": Case("lm", ["--epochs", "1.5"], "argument --epochs: '1.5' is not a whole number"),
    "lm zero batch": Case("lm", ["--batch-size", "0"], "argument --batch-size: must be positive"),
    "lm context 1": Case("lm", ["--context", "1"], "argument --context: must be at least 2, got 1"),
    "lm zero heads": Case("lm", ["--heads", "0"], "argument --heads: must be positive"),
    "lm heads not dividing": Case("lm", ["--d-model", "30", "--heads", "4"], "--d-model 30 is not divisible by "
                                  "--heads 4"),
    "lm zero samples": Case("lm", ["--train-samples", "0"], "argument --train-samples: must be positive"),
    "lm unknown model": Case("lm", ["--models", "transformer"], "argument --models: unknown 'transformer'; choose "
                             "from attention, summation, hybrid"),
    "lm model twice": Case("lm", ["--models", "hybrid,hybrid"], "give distinct names among"),
    "lm unknown dataset": Case("lm", ["--dataset", "wikitext103"], "unknown dataset 'wikitext103'"),
    "lm unknown tokenizer": Case("lm", ["--tokenizer", "words"], "unknown tokenizer 'words'"),
    "lm tiny bpe": Case("lm", ["--tokenizer", "bpe:10"], "N in bpe:N must be a whole number >= 257"),
    "lm unknown device": Case("lm", ["--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    "lm MINISUM_DEVICE tpu": Case("lm", [], "MINISUM_DEVICE='tpu' is not a device", env={"MINISUM_DEVICE": "tpu"}),
    "lm activation too large": Case("lm", ["--models", "attention", "--context", HUGE, "--batch-size", "64"],
                                    "cannot fit in memory: a training step holds about 14.0 TiB, the most for its attention "
                                    "scores (3 x 64 x 2 x 99,999 x 99,999 float32)"),
    # --- train_lm.py: the run folder
    "lm folder of another run": Case("lm", [], "holds another run (hybrid.npz, loss_curves.png, results.json, "
                                     "run.json and 2 more): continue it with --resume, choose another --out-dir, "
                                     "or add --overwrite"),
    "lm resume with other flags": Case("lm", ["--resume", "--d-model", "32"], "was made with --d-model 16, not 32"),
    "lm resume with another lr": Case("lm", ["--resume", "--lr", "0.5"], "was made with --lr 0.01, not 0.5"),
    "lm resume and overwrite": Case("lm", ["--resume", "--overwrite"], "--resume continues the run in --out-dir and "
                                    "--overwrite moves it aside: give one of them"),
    "lm resume of nothing": Case("lm", ["--resume"], "nothing to resume in", out_dir="{tmp}/empty"),
    "lm out-dir is a file": Case("lm", [], "is not a folder", out_dir="{tmp}/a_file", prepare=a_file),
    "lm out-dir below a file": Case("lm", [], "a_file exists and is not a folder", out_dir="{tmp}/a_file/run",
                                    prepare=a_file),
    "lm out-dir unwritable": Case("lm", [], "--out-dir: cannot create /proc/minisum-run in /proc",
                                  out_dir="/proc/minisum-run"),
    "lm run.json not JSON": Case("lm", ["--resume"], "run.json is unreadable", prepare=write("run.json", "{oops")),
    "lm run.json bad epochs": Case("lm", ["--resume"], "run.json holds a flag this script refuses (argument "
                                   "--epochs: 'ten' is not a whole number", prepare=run_flag("epochs", "ten")),
    # --- train_lm.py: checkpoints and the tokenizer
    "lm resume truncated checkpoint": Case("lm", ["--resume", "--epochs", "2"], "summation.npz is unreadable",
                                           prepare=truncate("summation.npz")),
    "lm resume config not JSON": Case("lm", ["--resume"], "summation.npz is malformed", prepare=lambda run, tmp:
                                      edit_checkpoint(run / "summation.npz", config="{not json")),
    "lm resume config a list": Case("lm", ["--resume"], "hybrid.npz is malformed (its config and extra must be "
                                    "JSON objects)", prepare=lambda run, tmp: edit_checkpoint(run / "hybrid.npz",
                                                                                              config=[1, 2])),
    "lm resume no model config": Case("lm", ["--resume"], "summation.npz is malformed (no field 'model')",
                                      prepare=checkpoint_field("summation.npz", lambda c, e: c.pop("model"))),
    "lm resume rng garbage": Case("lm", ["--resume", "--epochs", "2"], "hybrid.npz is malformed",
                                  prepare=checkpoint_field("hybrid.npz", lambda c, e: e.update(rng={"x": 1}))),
    "lm resume record garbage": Case("lm", ["--resume", "--epochs", "2"], "hybrid.npz is malformed",
                                     prepare=checkpoint_field("hybrid.npz", lambda c, e: e.update(record=[]))),
    "lm resume partial garbage": Case("lm", ["--resume", "--epochs", "2"], "summation.npz is malformed",
                                      prepare=checkpoint_field("summation.npz",
                                                               lambda c, e: e.update(partial={"batches": "x"}))),
    "lm resume other tokenizer": Case("lm", ["--resume", "--epochs", "2"], "was trained with another tokenizer",
                                      prepare=other_tokenizer),
    "lm generate other tokenizer": Case("lm", ["--generate", "The"], "was trained with another tokenizer",
                                        prepare=other_tokenizer),
    "lm generate config not JSON": Case("lm", ["--generate", "The"], "summation.npz is malformed",
                                        prepare=lambda run, tmp: edit_checkpoint(run / "summation.npz", config="[")),
    "lm generate model config wrong": Case("lm", ["--generate", "The"], "are not all whole numbers",
                                           prepare=checkpoint_field("summation.npz", lambda c, e: c["model"].update(
                                               d_model="wide"))),
    "lm generate no checkpoint": Case("lm", ["--generate", "The", "--models", "attention"], "no checkpoint"),
    "lm generate negative temperature": Case("lm", ["--generate", "The", "--temperature", "-1"],
                                             "argument --temperature: must be at least 0"),
    "lm generate zero top-k": Case("lm", ["--generate", "The", "--top-k", "0"], "argument --top-k: must be positive"),
    "lm generate too long": Case("lm", ["--generate", "The", "--max-new-tokens", "40"], "positional table of 32"),
    "lm diverging lr": Case("lm", ["--lr", "1e6", "--epochs", "2"], "diverged (see above)", status=THREE,
                            out_dir="{tmp}/new"),

    # --- train_cls.py
    "cls negative seed": Case("cls", ["--seed", "-3"], "argument --seed: must be at least 0, got -3"),
    "cls nan lr": Case("cls", ["--lr", "nan"], "argument --lr: must be a finite number, got nan"),
    "cls zero lr": Case("cls", ["--lr", "0"], "argument --lr: must be positive"),
    "cls nan clip": Case("cls", ["--clip-value", "nan"], "argument --clip-value: must be a finite number"),
    "cls zero clip": Case("cls", ["--clip-value", "0"], "argument --clip-value: must be positive"),
    "cls zero epochs": Case("cls", ["--epochs", "0"], "argument --epochs: must be positive"),
    "cls negative batch": Case("cls", ["--batch-size", "-4"], "argument --batch-size: must be positive"),
    "cls vocabulary 1": Case("cls", ["--vocab-size", "1"], "argument --vocab-size: must be at least 2"),
    "cls zero length": Case("cls", ["--seq-len", "0"], "argument --seq-len: must be positive"),
    "cls zero heads": Case("cls", ["--heads", "0"], "argument --heads: must be positive"),
    "cls negative limit": Case("cls", ["--train-limit", "-1"], "argument --train-limit: must be at least 0"),
    "cls resplit 1": Case("cls", ["--resplit", "1"], "argument --resplit: must lie in (0, 1), got 1"),
    "cls resplit nan": Case("cls", ["--resplit", "nan"], "argument --resplit: must be a finite number"),
    "cls unknown model": Case("cls", ["--models", "lstm"], "argument --models: unknown 'lstm'"),
    "cls unknown dataset": Case("cls", ["--dataset", "mnist"], "argument --dataset: invalid choice: 'mnist'"),
    "cls missing files": Case("cls", ["--data-dir", "{tmp}"], "no train/test file found", out_dir="{tmp}/new"),
    "cls activation too large": Case("cls", ["--seq-len", HUGE, "--batch-size", "64"], "cannot fit in memory: a training "
                                     "step holds about 9.3 TiB, the most for its attention scores (2 x 64 x 2 x 100,000 x "
                                     "100,000 float32)"),
    "cls folder of another run": Case("cls", [], "holds another run (attention.npz, curves.png, results.json, run.json"
                                      " and 1 more): continue it with --resume"),
    "cls resume with other flags": Case("cls", ["--resume", "--seq-len", "8"], "was made with --seq-len 16, not 8"),
    "cls resume of nothing": Case("cls", ["--resume"], "nothing to resume in", out_dir="{tmp}/empty"),
    "cls out-dir is a file": Case("cls", [], "a_file exists and is not a folder", out_dir="{tmp}/a_file",
                                  prepare=a_file),
    "cls out-dir unwritable": Case("cls", [], "--out-dir: cannot create", out_dir="/proc/minisum-run"),
    "cls resume truncated checkpoint": Case("cls", ["--resume", "--epochs", "2"], "summation.npz is unreadable",
                                            prepare=lambda run, tmp: truncate("summation.npz")(cls_run(run), tmp)),
    "cls resume malformed callbacks": Case("cls", ["--resume", "--epochs", "2"], "attention.npz is malformed",
                                           prepare=lambda run, tmp: checkpoint_field("attention.npz", lambda c, e: e[
                                               "record"].pop("history"))(cls_run(run), tmp)),
    "cls resume other vocabulary": Case("cls", ["--resume", "--epochs", "2", "--data-dir", "{tmp}/ag_other"],
                                        "was trained with another vocabulary", prepare=other_ag_news),
    "cls diverging lr": Case("cls", ["--lr", "1e6", "--clip-value", "1e6", "--epochs", "3", "--models", "summation"],
                             "summation diverged (see above)", status=THREE, out_dir="{tmp}/new"),

    # --- train_mm.py
    "mm negative seed": Case("mm", ["--seed", "-1"], "argument --seed: must be at least 0, got -1"),
    "mm negative data seed": Case("mm", ["--data-seed", "-2"], "argument --data-seed: must be at least 0"),
    "mm nan lr": Case("mm", ["--lr", "nan"], "argument --lr: must be a finite number, got nan"),
    "mm inf lr": Case("mm", ["--lr", "inf"], "argument --lr: must be a finite number, got inf"),
    "mm nan ridge alpha": Case("mm", ["--ridge-alpha", "nan"], "argument --ridge-alpha: must be a finite number"),
    "mm negative ridge alpha": Case("mm", ["--ridge-alpha", "-1"], "argument --ridge-alpha: must be at least 0"),
    "mm dropout 1": Case("mm", ["--dropout", "1"], "argument --dropout: must lie in [0, 1), got 1"),
    "mm zero epochs": Case("mm", ["--epochs", "0"], "argument --epochs: must be positive"),
    "mm zero batch": Case("mm", ["--batch-size", "0"], "argument --batch-size: must be positive"),
    "mm max tokens 2": Case("mm", ["--max-tokens", "2"], "argument --max-tokens: must be at least 3"),
    "mm zero patience": Case("mm", ["--lr-patience", "0"], "argument --lr-patience: must be positive"),
    "mm zero synthetic": Case("mm", ["--synthetic", "0"], "argument --synthetic: must be positive"),
    "mm synthetic and file": Case("mm", ["--synthetic", "100"], "either --synthetic or --data-file"),
    "mm unknown model": Case("mm", ["--models", "ridge,lstm"], "argument --models: unknown 'lstm'"),
    "mm no numeric column": Case("mm", ["--numeric", ","], "--numeric needs at least one column name"),
    "mm missing column": Case("mm", ["--numeric", "toxicity,insult"], "missing column", out_dir="{tmp}/new"),
    "mm activation too large": Case("mm", ["--seq-len", HUGE], "cannot fit in memory: a training step holds "
                                    "about 18.6 TiB, the most for its attention scores (2 x 64 x 4 x 100,000 x 100,000 "
                                    "float32)"),
    "mm folder of another run": Case("mm", [], "holds another run (attention.npz, results.json, results.png, run.json"
                                     " and 1 more): continue it with --resume"),
    "mm resume with other flags": Case("mm", ["--resume", "--dropout", "0.5"], "was made with --dropout 0.2, not 0.5"),
    "mm run.json nan lr": Case("mm", ["--resume"], "run.json holds a flag this script refuses (argument --lr: must "
                               "be a finite number, got nan", prepare=run_flag("lr", float("nan"))),
    "mm resume of nothing": Case("mm", ["--resume"], "nothing to resume in", out_dir="{tmp}/empty"),
    "mm out-dir below a file": Case("mm", [], "a_file exists and is not a folder", out_dir="{tmp}/a_file/x",
                                    prepare=a_file),
    "mm resume truncated checkpoint": Case("mm", ["--resume", "--epochs", "2"], "attention.npz is unreadable",
                                           prepare=truncate("attention.npz")),
    "mm resume malformed callbacks": Case("mm", ["--resume", "--epochs", "2"], "summation.npz is malformed",
                                          prepare=checkpoint_field("summation.npz",
                                                                   lambda c, e: e["state"].update(callbacks=3))),
    "mm diverging lr": Case("mm", ["--lr", "1e6", "--epochs", "3", "--models", "summation"],
                            "summation diverged (see above)", status=THREE, out_dir="{tmp}/new"),
}


@pytest.fixture(scope="module")
def earlier_runs(tmp_path_factory):
    """One finished tiny run of each script."""
    runs = {}
    for script, module in SCRIPTS.items():
        out = tmp_path_factory.mktemp(script) / "run"
        module.main(TINY[script] + ["--out-dir", str(out)])
        runs[script] = out
    return runs


def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", CASES)
def test_bad_input(name, earlier_runs, tmp_path, capsys, monkeypatch):
    case = CASES[name]
    run = Path(shutil.copytree(earlier_runs[case.script], tmp_path / "run"))
    if case.prepare:
        case.prepare(run, tmp_path)
    (tmp_path / "empty").mkdir()
    before = snapshot(run)
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    fill = {"run": str(run), "tmp": str(tmp_path)}
    argv = TINY[case.script] + [a.format(**fill) for a in case.flags] + ["--out-dir", case.out_dir.format(**fill)]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        runtime.run_main(lambda: SCRIPTS[case.script].main(argv))
    err = capsys.readouterr().err
    assert exit_info.value.code == case.status, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert case.message in err
    assert snapshot(run) == before  # the earlier run's files, byte for byte


def test_there_are_at_least_60_cases_over_the_three_scripts():
    scripts = [case.script for case in CASES.values()]
    assert len(CASES) >= 60 and all(scripts.count(s) >= 15 for s in SCRIPTS)


@pytest.mark.parametrize("script", ["lm", "cls"])
def test_a_missing_package_of_requirements_txt_is_one_line_that_says_how_to_install_it(
        script, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # `import tokenizers` now fails, as when absent
    with pytest.raises(SystemExit) as exit_info:
        runtime.run_main(lambda: SCRIPTS[script].main(TINY[script] + ["--out-dir", str(tmp_path / "run")]))
    err = capsys.readouterr().err
    assert exit_info.value.code == TWO, err
    assert err.count("\n") == 1 and "'tokenizers'" in err and "pip install -r requirements.txt" in err, err
