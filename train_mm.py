"""The multimodal regression benchmark (PAPER.md section 3): a comment's text plus four
numbers -> one number, with three models compared on the same 60/20/20 split.

    ridge       closed-form ridge regression (alpha 1.0) on the numbers only
    attention   concatenation fusion: attention text vector (256) ++ 4 numeric vectors -> 1,280-d head
    summation   summation fusion: summation text vector + summed numeric vectors in one 256-d latent

Data: Civil Comments from the Hugging Face hub (first 10,000 train rows) by default,
`--data-file` for a local CSV / JSONL / Parquet table, or `--synthetic N` for a generated
table whose target depends on both the text and the numbers (no download needed).

    python train_mm.py --synthetic 2000 --quick             # a small preset: about a minute on a CPU
    python train_mm.py --synthetic 10000 --seq-len 32       # the paper's settings but 32 tokens (enough
                                                            # for these texts): minutes on a CPU
    python train_mm.py --data-file civil.csv --device gpu   # the paper's protocol on your Civil Comments copy

docs/train_mm.md has measured numbers.

Writes results.json (config, metrics, per-epoch curves, timing, hardware) and
results.png (validation curves, predicted vs true) to --out-dir.
"""
import math
import os
import sys
import time

import numpy as np

from minisum import no_grad, ops, to_device, to_numpy
from minisum.backend import seed as seed_everything
from minisum.callbacks import EarlyStopping, ReduceLROnPlateau
from minisum.data import tabular
from minisum.data.keras_text import TextVectorizer
from minisum.data.synthetic_multimodal import make_synthetic_table
from minisum.errors import UserError
from minisum.models import AttentionFusionRegressor, SummationFusionRegressor
from minisum.optim import KERAS_ADAM_EPS, AdamW
from minisum.ridge import regression_metrics, ridge_fit, ridge_predict
from minisum.runtime import (
    ArgumentParser,
    Timer,
    hardware_info,
    index_batches,
    progress,
    pyplot,
    run_main,
    setup_device,
    write_json,
)

MODELS = ("ridge", "attention", "summation")
# The paper's sizes, and a small preset for a quick look on a CPU. Flags given explicitly win.
PAPER = dict(rows=10000, epochs=30, seq_len=300, max_tokens=5000, d_model=256, head_dim=64)
QUICK = dict(rows=2000, epochs=30, seq_len=64, max_tokens=2000, d_model=64, head_dim=16)
KERAS_PLATEAU_MIN_DELTA = 1e-4  # Keras' ReduceLROnPlateau default; EarlyStopping's is 0


def parse_args(argv):
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    data = p.add_argument_group("data")
    data.add_argument("--data-file", help="local .csv / .jsonl / .parquet table (optionally .gz) instead of the hub")
    data.add_argument("--synthetic", type=int, metavar="N",
                      help="generate an N-row synthetic table instead (--rows then keeps the first ROWS)")
    data.add_argument("--rows", type=int, help=f"first ROWS rows (paper {PAPER['rows']}, quick {QUICK['rows']})")
    data.add_argument("--text-column", default=tabular.TEXT_COL, help="text column (default %(default)s)")
    data.add_argument("--numeric", default=",".join(tabular.NUMERIC_COLS), help="comma-separated input columns")
    data.add_argument("--target", default=tabular.TARGET_COL, help="target column (default %(default)s)")
    data.add_argument("--data-seed", type=int, default=42, help="seed of the split and of --synthetic (paper 42)")
    model = p.add_argument_group("model and training (defaults: the paper's values)")
    model.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ", ".join(MODELS))
    model.add_argument("--max-tokens", type=int, help="vocabulary size of the text vectorizer (paper 5000)")
    model.add_argument("--seq-len", type=int, help="tokens per text, padded or cut at the end (paper 300)")
    model.add_argument("--d-model", type=int, help="width of every layer (paper 256)")
    model.add_argument("--heads", type=int, default=4, help="attention heads (default %(default)s)")
    model.add_argument("--head-dim", type=int, help="attention key size per head (paper 64)")
    model.add_argument("--attention-init", choices=("keras", "keras3"), default="keras",
                       help="Glorot fans of the attention kernels: Keras 2.12's (the reference's pin) or Keras 3's")
    model.add_argument("--dropout", type=float, default=0.2, help="dropout before the last layer (default %(default)s)")
    model.add_argument("--ridge-alpha", type=float, default=1.0, help="ridge penalty (default %(default)s)")
    model.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (default %(default)s)")
    model.add_argument("--batch-size", type=int, default=64, help="default %(default)s")
    model.add_argument("--epochs", type=int, help="maximum epochs (paper 30)")
    model.add_argument("--lr-patience", type=int, default=3,
                       help="epochs without improvement before lr x0.1 (default %(default)s)")
    model.add_argument("--stop-patience", type=int, default=5,
                       help="epochs without improvement before stopping (default %(default)s)")
    run = p.add_argument_group("run")
    quick = ", ".join(f"{k} {v}" for k, v in QUICK.items())
    run.add_argument("--quick", action="store_true", help=f"small preset: {quick}")
    run.add_argument("--device", default="cpu", choices=("cpu", "gpu"), help="gpu needs CuPy (default %(default)s)")
    run.add_argument("--seed", type=int, default=0, help="seed of the initialisation, shuffling and dropout")
    run.add_argument("--out-dir", default="runs/mm", help="where results.json and results.png go (default %(default)s)")
    args = p.parse_args(argv)
    preset = QUICK if args.quick else PAPER
    for name, value in preset.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def check_args(args):
    """Every impossible request fails here, before anything is loaded or written."""
    for name in ("rows", "epochs", "seq_len", "max_tokens", "d_model", "heads", "head_dim", "batch_size"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.max_tokens < 3:
        raise UserError(f"--max-tokens must be at least 3 (padding, unknown word, one word), got {args.max_tokens}")
    if args.lr <= 0 or args.ridge_alpha < 0 or not 0 <= args.dropout < 1:
        raise UserError("need --lr > 0, --ridge-alpha >= 0 and 0 <= --dropout < 1")
    if not [c for c in args.numeric.split(",") if c.strip()]:
        raise UserError("--numeric needs at least one column name")
    if args.synthetic is not None and args.data_file:
        raise UserError("give either --synthetic or --data-file, not both")
    if args.synthetic is not None and args.synthetic < 1:
        raise UserError(f"--synthetic must be at least 1, got {args.synthetic}")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise UserError(f"unknown model(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(MODELS)}")
    if os.path.exists(args.out_dir) and not os.path.isdir(args.out_dir):
        raise UserError(f"--out-dir {args.out_dir} exists and is not a folder")
    return [m for m in MODELS if m in models]


def load_data(args):
    """TableData (texts, numeric (N, F), target (N,)) from the source the flags name."""
    numeric = tuple(c.strip() for c in args.numeric.split(",") if c.strip())
    if args.synthetic is not None:
        columns = make_synthetic_table(args.synthetic, seed=args.data_seed)
        columns = {name: values[:args.rows] for name, values in columns.items()}
        source = f"synthetic table ({args.synthetic} rows, seed {args.data_seed})"
        return tabular.table_from_columns(columns, args.text_column, numeric, args.target, source=source)
    if args.data_file:
        return tabular.load_table(args.data_file, args.text_column, numeric, args.target, rows=args.rows)
    if (args.text_column, numeric, args.target) != (tabular.TEXT_COL, tabular.NUMERIC_COLS, tabular.TARGET_COL):
        raise UserError("--text-column, --numeric and --target apply to --data-file and --synthetic; "
                        "from the hub the paper's columns are used")
    return tabular.load_civil_comments(args.rows)


def build_model(name, vocab_size, n_features, args):
    if name == "attention":
        return AttentionFusionRegressor(vocab_size, seq_len=args.seq_len, d_model=args.d_model, n_features=n_features,
                                        n_heads=args.heads, head_dim=args.head_dim, dropout=args.dropout,
                                        attention_init=args.attention_init)
    return SummationFusionRegressor(vocab_size, seq_len=args.seq_len, d_model=args.d_model, n_features=n_features,
                                    dropout=args.dropout)


def predict(model, ids, numbers, batch_size):
    """Predictions (N,) as a NumPy array, dropout off."""
    model.eval()
    out = []
    with no_grad():
        for rows in index_batches(len(ids), batch_size):
            out.append(to_numpy(model(ids[rows], numbers[rows]).data))
    return np.concatenate(out)[:, 0].astype(np.float64)


def train(name, model, train_set, val_set, args):
    """Keras' fit with the paper's callbacks; returns the per-epoch history and the best epoch."""
    ids, numbers, target = train_set
    optimizer = AdamW(model.parameters(), lr=args.lr, eps=KERAS_ADAM_EPS, weight_decay=0.0, eps_style="keras")
    plateau = ReduceLROnPlateau(optimizer, factor=0.1, patience=args.lr_patience, min_delta=KERAS_PLATEAU_MIN_DELTA)
    stopper = EarlyStopping(model, patience=args.stop_patience)
    shuffle = np.random.default_rng(args.seed)
    history = []
    for epoch in range(args.epochs):
        with Timer() as timer:
            model.train()  # dropout on
            steps = index_batches(len(ids), args.batch_size, to_device(shuffle.permutation(len(ids))))
            total = 0.0
            for rows in progress(steps, len(steps), f"{name} epoch {epoch + 1}/{args.epochs}"):
                loss = ops.mse_loss(model(ids[rows], numbers[rows]), target[rows])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += float(loss.data) * len(rows)
            train_loss = total / len(ids)
            val_pred = predict(model, val_set[0], val_set[1], args.batch_size)
            val_loss = float(np.mean((val_pred - to_numpy(val_set[2])[:, 0]) ** 2))
        history.append(dict(epoch=epoch + 1, train_loss=train_loss, val_loss=val_loss, lr=optimizer.lr,
                            seconds=timer.seconds))
        print(f"{name:9s} epoch {epoch + 1:2d}  train {train_loss:.5f}  val {val_loss:.5f}  "
              f"lr {optimizer.lr:.0e}  {timer.seconds:.1f}s", flush=True)  # flushed: a log file shows progress
        if not math.isfinite(train_loss):
            print(f"{name}: the training loss is {train_loss}; stopping and keeping the best weights so far",
                  file=sys.stderr)
            break
        plateau.step(val_loss)
        if stopper.step(val_loss, epoch + 1):
            print(f"{name}: no improvement for {args.stop_patience} epochs, stopping")
            break
    stopper.restore_best()  # as Keras' restore_best_weights=True does at the end of fit
    return history, stopper.best_epoch


def plot(path, results, y_test):
    """Validation loss per epoch, and predicted vs true on the test split."""
    plt = pyplot()

    fig, (curves, scatter) = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, r in results.items():
        if r["history"]:
            epochs, losses = zip(*((h["epoch"], h["val_loss"]) for h in r["history"]))
            curves.plot(epochs, losses, marker=".", label=name)
        else:
            curves.axhline(r["val_mse"], linestyle="--", color="gray", label=f"{name} (closed form)")
        scatter.scatter(y_test, r["test_pred"], s=4, alpha=0.4, label=f"{name} (R² {r['test']['r2']:.3f})")
    curves.set(xlabel="epoch", ylabel="validation MSE", title="validation loss", yscale="log")  # ridge is far above
    curves.legend()
    low, high = float(np.min(y_test)), float(np.max(y_test))
    scatter.plot([low, high], [low, high], color="black", linewidth=0.8)
    scatter.set(xlabel="true", ylabel="predicted", title="test split")
    scatter.legend(markerscale=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    started = time.perf_counter()
    args = parse_args(argv)
    models = check_args(args)
    setup_device(args.device, args.seed)

    # -- data: load, split 60/20/20, vectorize the text on the training split only
    table = load_data(args)
    train_rows, val_rows, test_rows = tabular.split_60_20_20(len(table.texts), seed=args.data_seed)
    print(f"data: {table.source}, {len(table.texts)} rows -> train {len(train_rows)}, val {len(val_rows)}, "
          f"test {len(test_rows)}; target {table.target_col}, numbers {', '.join(table.numeric_cols)}")
    if table.note:
        print(f"note: {table.note}")
    vectorizer = TextVectorizer(max_tokens=args.max_tokens, output_sequence_length=args.seq_len)
    vectorizer.fit([table.texts[i] for i in train_rows])
    ids = vectorizer.transform(table.texts)  # (N, seq_len) int64
    numeric = table.numeric.astype(np.float32)  # (N, F), fed as they are (Civil Comments' are in [0, 1])
    target = table.target.astype(np.float32)[:, None]  # (N, 1)
    splits = {name: tuple(to_device(a[rows]) for a in (ids, numeric, target))
              for name, rows in (("train", train_rows), ("val", val_rows), ("test", test_rows))}
    y_train, y_val, y_test = (table.target[rows] for rows in (train_rows, val_rows, test_rows))
    print(f"text: vocabulary {vectorizer.vocab_size} (max {args.max_tokens}), {args.seq_len} tokens per text")

    # -- the three models
    results = {}
    for name in models:
        if name == "ridge":
            with Timer() as timer:
                w, b = ridge_fit(table.numeric[train_rows], y_train, alpha=args.ridge_alpha)
            val_pred = ridge_predict(table.numeric[val_rows], w, b)
            test_pred = ridge_predict(table.numeric[test_rows], w, b)
            results[name] = dict(params=len(w) + 1, train_seconds=timer.seconds, history=[], best_epoch=None,
                                 val_mse=regression_metrics(y_val, val_pred)["mse"])
        else:
            seed_everything(args.seed)  # each model's initialisation is the same whichever others run
            model = build_model(name, vectorizer.vocab_size + 1, numeric.shape[1], args)
            print(f"{name}: {model.num_parameters():,} parameters")
            with Timer() as timer:
                history, best_epoch = train(name, model, splits["train"], splits["val"], args)
            test_pred = predict(model, splits["test"][0], splits["test"][1], args.batch_size)
            results[name] = dict(params=model.num_parameters(), train_seconds=timer.seconds, history=history,
                                 best_epoch=best_epoch, val_mse=min(h["val_loss"] for h in history))
        results[name].update(test=regression_metrics(y_test, test_pred), test_pred=test_pred)
    constant = regression_metrics(y_test, np.full(len(y_test), y_train.mean()))

    # -- report
    print(f"\ntest split ({len(test_rows)} rows)")
    print(f"{'model':10s} {'params':>10s} {'train s':>8s} {'MSE':>9s} {'RMSE':>8s} {'MAE':>8s} {'R²':>7s}")
    lines = [(name, f"{r['params']:,}", f"{r['train_seconds']:.1f}", r["test"]) for name, r in results.items()]
    for name, params, seconds, m in lines + [("train mean", "1", "-", constant)]:  # the constant predictor
        print(f"{name:10s} {params:>10s} {seconds:>8s} {m['mse']:9.5f} {m['rmse']:8.4f} {m['mae']:8.4f} {m['r2']:7.3f}")

    data = dict(source=table.source, rows=len(table.texts), note=table.note, text_column=args.text_column,
                numeric_columns=list(table.numeric_cols), target_column=table.target_col,
                split=dict(train=len(train_rows), val=len(val_rows), test=len(test_rows)),
                vocab_size=vectorizer.vocab_size)
    report = {name: {k: v for k, v in r.items() if k != "test_pred"} for name, r in results.items()}
    summary = dict(command=["train_mm.py", *(sys.argv[1:] if argv is None else argv)],
                   config=vars(args), data=data, models=report, constant_baseline=constant, hardware=hardware_info(),
                   wall_seconds=time.perf_counter() - started)
    write_json(os.path.join(args.out_dir, "results.json"), summary)
    plot(os.path.join(args.out_dir, "results.png"), results, y_test)
    print(f"wrote {os.path.join(args.out_dir, 'results.json')} and results.png "
          f"({summary['wall_seconds']:.0f}s in all)")
    return summary


if __name__ == "__main__":
    run_main(main)
