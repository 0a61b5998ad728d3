"""The multimodal regression benchmark (docs/paper.md section 3): a comment's text plus four
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
    python train_mm.py --resume                             # continue the run in --out-dir, its own flags

docs/train_mm.md has measured numbers.

The run owns --out-dir and writes there run.json (its flags), results.json (config,
metrics, per-epoch curves, timing, hardware; after every epoch), <model>.npz (a checkpoint
of each neural model after every epoch) and results.png (validation curves, predicted vs
true). Ctrl-C or SIGTERM saves a checkpoint after the current batch (exit 130 or 143);
--resume continues from it. A model whose loss diverges stops alone (exit 3 at the end).
Under `mpiexec -n N` each rank trains on its share of every batch (docs/distributed.md); the
ranks draw their dropout masks for their own rows, so a run is not the same draw as one
process's, only the same training in distribution.
"""
import sys
import time
from pathlib import Path

import numpy as np

from minisum import backend, distributed, no_grad, ops, to_device, to_numpy
from minisum.backend import seed as seed_everything
from minisum.callbacks import EarlyStopping, ReduceLROnPlateau
from minisum.checkpoint import fields_of, fingerprint
from minisum.data import tabular
from minisum.data.keras_text import TextVectorizer
from minisum.data.synthetic_multimodal import make_synthetic_table
from minisum.errors import UserError
from minisum.models import AttentionFusionRegressor, SummationFusionRegressor
from minisum.optim import KERAS_ADAM_EPS, AdamW
from minisum.ridge import regression_metrics, ridge_fit, ridge_predict
from minisum.run import arguments, memory, runtime
from minisum.run.arguments import NON_NEGATIVE, SEED, at_least, between, names, positive
from minisum.run.folder import RunFolder, resumed, run_flags
from minisum.run.meter import Diverged, check_parameters, run_diverged, stopped_diverged
from minisum.run.progress import Progress, read_progress, restore, save_progress
from minisum.run.runtime import Timer, hardware_info, index_batches, pyplot, run_main, setup_device
from minisum.run.run import Run

MODELS = ("ridge", "attention", "summation")
# The paper's sizes, and a small preset for a quick look on a CPU. Flags given explicitly win.
PAPER = dict(rows=10000, epochs=30, seq_len=300, max_tokens=5000, d_model=256, head_dim=64)
QUICK = dict(rows=2000, epochs=30, seq_len=64, max_tokens=2000, d_model=64, head_dim=16)
KERAS_PLATEAU_MIN_DELTA = 1e-4  # Keras' ReduceLROnPlateau default; EarlyStopping's is 0
MAY_CHANGE_ON_RESUME = ("epochs", "models", "quick", "data_file")
RUN_FILES = ("results.json", "results.png", "*.npz")
DIVERGED_FACTOR = 10  # a loss 10x the untrained model's validation MSE has diverged


def parse_args(argv):
    p = arguments.ArgumentParser(description=__doc__.split("\n\n")[0])
    data = p.add_argument_group("data")
    data.add_argument("--data-file", help="local .csv / .jsonl / .parquet table (optionally .gz) instead of the hub")
    data.add_argument("--synthetic", type=positive(int), metavar="N",
                      help="generate an N-row synthetic table instead (--rows then keeps the first ROWS)")
    data.add_argument("--rows", type=positive(int), help=f"first ROWS rows (paper {PAPER['rows']}, "
                                                         f"quick {QUICK['rows']})")
    data.add_argument("--text-column", default=tabular.TEXT_COL, help="text column (default %(default)s)")
    data.add_argument("--numeric", default=",".join(tabular.NUMERIC_COLS), help="comma-separated input columns")
    data.add_argument("--target", default=tabular.TARGET_COL, help="target column (default %(default)s)")
    data.add_argument("--data-seed", type=SEED, default=42, help="seed of the split and of --synthetic (paper 42)")
    model = p.add_argument_group("model and training (defaults: the paper's values)")
    model.add_argument("--models", type=names(MODELS), default=list(MODELS),
                       help="comma-separated subset of " + ", ".join(MODELS))
    model.add_argument("--max-tokens", type=at_least(3), help="vocabulary size of the text vectorizer (paper 5000; "
                       "at least 3: padding, unknown word, one word)")
    model.add_argument("--seq-len", type=positive(int), help="tokens per text, padded or cut at the end (paper 300)")
    model.add_argument("--d-model", type=positive(int), help="width of every layer (paper 256)")
    model.add_argument("--heads", type=positive(int), default=4, help="attention heads (default %(default)s)")
    model.add_argument("--head-dim", type=positive(int), help="attention key size per head (paper 64)")
    model.add_argument("--attention-init", choices=("keras", "keras3"), default="keras",
                       help="Glorot fans of the attention kernels: Keras 2.12's (the reference's pin) or Keras 3's")
    model.add_argument("--dropout", type=between(0, 1), default=0.2,
                       help="dropout before the last layer, in [0, 1) (default %(default)s)")
    model.add_argument("--ridge-alpha", type=NON_NEGATIVE, default=1.0, help="ridge penalty (default %(default)s)")
    model.add_argument("--lr", type=positive(float), default=1e-4, help="Adam learning rate (default %(default)s)")
    model.add_argument("--batch-size", type=positive(int), default=64, help="default %(default)s")
    model.add_argument("--epochs", type=positive(int), help="maximum epochs (paper 30)")
    model.add_argument("--lr-patience", type=positive(int), default=3,
                       help="epochs without improvement before lr x0.1 (default %(default)s)")
    model.add_argument("--stop-patience", type=positive(int), default=5,
                       help="epochs without improvement before stopping (default %(default)s)")
    run = p.add_argument_group("run")
    quick = ", ".join(f"{k} {v}" for k, v in QUICK.items())
    run.add_argument("--quick", action="store_true", help=f"small preset: {quick}")
    run.add_argument("--seed", type=SEED, default=0, help="seed of the initialisation, shuffling and dropout")
    arguments.add_run_flags(run, "runs/mm")
    args = p.parse_args(argv)
    if args.resume:
        args = resumed(p, argv, args, Path(args.out_dir), MAY_CHANGE_ON_RESUME)
    preset = QUICK if args.quick else PAPER
    for name, value in preset.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def settle_args(args):
    """Every check that needs no data, the device, the memory a step needs and the run folder.
    Returns the run folder."""
    folder = RunFolder(args.out_dir, RUN_FILES)
    if not [c for c in args.numeric.split(",") if c.strip()]:
        raise UserError("--numeric needs at least one column name")
    if args.synthetic is not None and args.data_file:
        raise UserError("give either --synthetic or --data-file, not both")
    setup_device(arguments.device(args), args.seed)
    features = len([c for c in args.numeric.split(",") if c.strip()])
    activations = {"embeddings": (2, (args.batch_size, args.seq_len, args.d_model)),  # each with its gradient
                   "fused features": (2, (args.batch_size, args.d_model * (1 + features)))}
    if "attention" in args.models:
        activations["attention scores"] = (2, (args.batch_size, args.heads, args.seq_len, args.seq_len))
    memory.check_fits(args.max_tokens * args.d_model, activations, "lower --batch-size, --seq-len or --d-model")
    folder.claim(args)
    return folder


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


def model_config(name, vocab_size, n_features, args):
    config = dict(vocab_size=vocab_size, seq_len=args.seq_len, d_model=args.d_model, n_features=n_features,
                  dropout=args.dropout)
    if name == "attention":
        return dict(config, n_heads=args.heads, head_dim=args.head_dim, attention_init=args.attention_init)
    return config


def build_model(name, vocab_size, n_features, args):
    kind = AttentionFusionRegressor if name == "attention" else SummationFusionRegressor
    return kind(**model_config(name, vocab_size, n_features, args))


def predict(model, ids, numbers, batch_size):
    """Predictions (N,) as a NumPy array (one copy to the host), dropout off."""
    model.eval()
    out = []
    with no_grad():
        for rows in index_batches(len(ids), batch_size):
            out.append(model(ids[rows], numbers[rows]).data)
    xp = backend.get_array_module(out[0])
    return to_numpy(xp.concatenate(out))[:, 0].astype(np.float64)


def fit(name, model, train_set, val_set, args, progress=None, save=None, run=None):
    """Keras' fit with the paper's callbacks, from `progress` (a checkpoint's, or a fresh start).
    `save` (Checkpoints) writes a checkpoint after every epoch, and on a signal to the `run`.
    Ends with the best epoch's weights, as Keras' restore_best_weights=True does; returns the
    record. With several ranks (the run's world) each trains on its share of every batch and
    validates on its share of the rows; all of them read the same sums and so take the
    callbacks' decisions alike."""
    ids, numbers, target = train_set
    world = run.world if run is not None else distributed.World()
    optimizer = AdamW(model.parameters(), lr=args.lr, eps=KERAS_ADAM_EPS, weight_decay=0.0, eps_style="keras")
    plateau = ReduceLROnPlateau(optimizer, factor=0.1, patience=args.lr_patience, min_delta=KERAS_PLATEAU_MIN_DELTA)
    stopper = EarlyStopping(model, patience=args.stop_patience)
    shuffle = np.random.default_rng(args.seed)
    progress = progress or Progress(record={"history": []}, epoch_rng=None, epochs_key="history")
    record, state = progress.record, progress.state
    if progress.from_checkpoint:
        save.restore(model, optimizer, progress, plateau, stopper)
        shuffle.bit_generator.state = progress.epoch_rng
    else:  # ten times the untrained model's validation loss is divergence
        state["limit"] = DIVERGED_FACTOR * float(np.mean((predict(model, *val_set[:2], args.batch_size)
                                                          - to_numpy(val_set[2])[:, 0]) ** 2))
    world.broadcast_parameters(model.parameters())
    record["status"] = "training"

    for epoch in range(progress.done + 1, args.epochs + 1):
        if state.get("stopped_early"):
            break
        progress.epoch_rng, meter = shuffle.bit_generator.state, progress.meter(world)
        steps = index_batches(len(ids), args.batch_size, to_device(shuffle.permutation(len(ids))))
        model.train()  # dropout on
        with Timer() as timer:
            for rows in progress_bar(steps, meter.batches, f"{name} epoch {epoch}/{args.epochs}"):
                mine = world.mine(rows)  # this rank's rows of the batch (all of them with one rank)
                loss = train_step(model, optimizer, (ids[mine], numbers[mine]), target[mine], world, len(rows))
                meter.add(loss, weight=len(rows), share=len(mine) / len(rows))
                if run is not None and run.stopping():
                    break
        signum = run.stopping() if run is not None else None  # read once: the state saved is the state it saw
        meter.seconds += timer.seconds
        meter.read(state["limit"])  # the epoch's one read of the device's sums, and the divergence check
        if signum and meter.batches < len(steps):  # stopped mid-epoch: save the epoch's progress, then stop
            check_parameters(model.parameters())
            record["status"], progress.partial = "interrupted", meter.state()
            save(model, optimizer, progress, plateau, stopper)
            raise run.stopped_at(name, epoch, meter.batches, save.path)
        with Timer() as val_timer:
            val_loss = validation_mse(model, val_set, args.batch_size, world)
        if not np.isfinite(val_loss) or val_loss > state["limit"]:
            raise Diverged(f"the validation loss became {val_loss:.4g}")
        check_parameters(model.parameters())
        record["history"].append(dict(epoch=epoch, train_loss=meter.loss, val_loss=val_loss, lr=optimizer.lr,
                                      seconds=meter.seconds + val_timer.seconds))
        print(f"{name:9s} epoch {epoch:2d}  train {meter.loss:.5f}  val {val_loss:.5f}  "
              f"lr {optimizer.lr:.0e}  {meter.seconds + val_timer.seconds:.1f}s", flush=True)  # flushed for log files
        plateau.step(val_loss)
        if stopper.step(val_loss, epoch):
            print(f"{name}: no improvement for {args.stop_patience} epochs, stopping")
            state["stopped_early"] = True
        record["status"] = "interrupted" if signum else "training"
        progress.epoch_rng, progress.partial = shuffle.bit_generator.state, None
        if save is not None:
            save(model, optimizer, progress, plateau, stopper)
        if signum:
            raise run.stopped_at(name, epoch, None, save.path)
    stopper.restore_best()  # as Keras' restore_best_weights=True does at the end of fit
    record.update(status="finished", best_epoch=stopper.best_epoch,
                  val_mse=min(h["val_loss"] for h in record["history"]),
                  train_seconds=sum(h["seconds"] for h in record["history"]))
    return record


def validation_mse(model, val_set, batch_size, world):
    """The mean squared error over the validation rows: each rank predicts its share of them,
    and the ranks' sums of squared errors are added up, so every rank gets the same value."""
    ids, numbers, target = val_set
    mine = world.rows(len(ids))
    squares = 0.0
    if mine.stop > mine.start:
        errors = predict(model, ids[mine], numbers[mine], batch_size) - to_numpy(target[mine])[:, 0]
        squares = float(np.sum(errors ** 2))
    return float(world.host_sum(np.array([squares]))[0]) / len(ids)


def train_step(model, optimizer, inputs, target, world, batch_size):
    """Zero, forward and loss on this rank's rows, backward, the ranks' gradients summed (each
    weighted by its share of the batch of `batch_size` rows), step. Returns the loss on the device
    (0 on a rank without rows: a last batch smaller than the world, where it only joins the sum)."""
    optimizer.zero_grad()
    loss = 0.0
    if len(target):
        loss = ops.mse_loss(model(*inputs), target)
        loss.backward(free_graph=True)  # the activations go as backward passes them
        loss = loss.data
    world.sum_gradients(optimizer.params, len(target) / batch_size)
    optimizer.step()
    return loss


def progress_bar(steps, done, desc):
    """The steps of an epoch not done before an interruption, behind a progress bar."""
    return runtime.progress(steps[done:], len(steps) - done, desc)


class Checkpoints:
    """A model's checkpoint with its callbacks' state and best weights: called after every epoch
    and on a signal (then `after()`, which writes results.json); restore(...) on --resume."""

    def __init__(self, path, config, after, write=True):
        self.path, self.config, self.after, self.write = path, config, after, write  # write: rank 0's

    def __call__(self, model, optimizer, progress, plateau, stopper):
        progress.state["callbacks"] = [[plateau.best, plateau.bad_epochs],
                                       [stopper.best, stopper.bad_epochs, stopper.best_epoch]]
        progress.arrays = stopper.best_state or {}
        if self.write:
            save_progress(self.path, model, optimizer, self.config, progress)
            self.after()

    def check(self, progress):
        """The callbacks' state of checkpoint `progress`, refused in one line when malformed."""
        with fields_of(self.path):
            (plateau_best, plateau_bad), (stop_best, stop_bad, best_epoch) = progress.state["callbacks"]
            return float(plateau_best), int(plateau_bad), float(stop_best), int(stop_bad), best_epoch, \
                float(progress.state["limit"])

    def restore(self, model, optimizer, progress, plateau, stopper):
        restore(self.path, model, optimizer, progress)
        plateau.best, plateau.bad_epochs, stopper.best, stopper.bad_epochs, stopper.best_epoch, _ = self.check(progress)
        stopper.best_state = progress.arrays or None


def fit_ridge(table, rows, alpha):
    """The closed-form baseline on the numbers only: (w, b, seconds)."""
    with Timer() as timer:
        try:
            w, b = ridge_fit(table.numeric[rows["train"]], table.target[rows["train"]], alpha=alpha)
        except np.linalg.LinAlgError:
            raise UserError("ridge: the numeric columns are collinear or constant on the training split; "
                            "use --ridge-alpha > 0") from None
    return w, b, timer.seconds


def plot(path, results, predictions, y_test):
    """Validation loss per epoch, and predicted vs true on the test split."""
    plt = pyplot()

    fig, (curves, scatter) = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, r in results.items():
        if r.get("history"):
            epochs, losses = zip(*((h["epoch"], h["val_loss"]) for h in r["history"]))
            curves.plot(epochs, losses, marker=".", label=name)
        elif name == "ridge":
            curves.axhline(r["val_mse"], linestyle="--", color="gray", label=f"{name} (closed form)")
        if name in predictions:
            scatter.scatter(y_test, predictions[name], s=4, alpha=0.4, label=f"{name} (R² {r['test']['r2']:.3f})")
    curves.set(xlabel="epoch", ylabel="validation MSE", title="validation loss", yscale="log")  # ridge is far above
    low, high = float(np.min(y_test)), float(np.max(y_test))
    scatter.plot([low, high], [low, high], color="black", linewidth=0.8)
    scatter.set(xlabel="true", ylabel="predicted", title="test split")
    for ax, options in ((curves, {}), (scatter, {"markerscale": 3})):
        if ax.get_legend_handles_labels()[0]:  # nothing to show when every model diverged at once
            ax.legend(**options)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    started = time.perf_counter()
    world = distributed.world()  # one rank without mpiexec
    distributed.quiet_other_ranks(world)
    args = parse_args(argv)
    run = Run(args, settle_args(args), world)

    # -- data: load, split 60/20/20, vectorize the text on the training split only
    table = load_data(args)
    rows = dict(zip(("train", "val", "test"), tabular.split_60_20_20(len(table.texts), seed=args.data_seed)))
    print(f"data: {table.source}, {len(table.texts)} rows -> train {len(rows['train'])}, val {len(rows['val'])}, "
          f"test {len(rows['test'])}; target {table.target_col}, numbers {', '.join(table.numeric_cols)}")
    if table.note:
        print(f"note: {table.note}")
    vectorizer = TextVectorizer(max_tokens=args.max_tokens, output_sequence_length=args.seq_len)
    vectorizer.fit([table.texts[i] for i in rows["train"]])
    ids = vectorizer.transform(table.texts)  # (N, seq_len) int64
    numeric = table.numeric.astype(np.float32)  # (N, F), fed as they are (Civil Comments' are in [0, 1])
    target = table.target.astype(np.float32)[:, None]  # (N, 1)
    splits = {split: tuple(to_device(a[r]) for a in (ids, numeric, target)) for split, r in rows.items()}  # once
    y_train, y_val, y_test = (table.target[rows[split]] for split in ("train", "val", "test"))
    print(f"text: vocabulary {vectorizer.vocab_size} (max {args.max_tokens}), {args.seq_len} tokens per text")

    # -- every checkpoint is checked before the first batch
    results, predictions, diverged = run.folder.earlier_records(args), {}, []
    configs, saved = {}, {}
    vocabulary = fingerprint("\n".join(vectorizer.vocabulary))
    for name in args.models:
        if name != "ridge":
            configs[name] = {"model": model_config(name, vectorizer.vocab_size + 1, numeric.shape[1], args),
                             "run": run_flags(args), "fingerprint": vocabulary,
                             "fingerprint_of": "vocabulary (the data or its flags changed)"}
            fixed = [key for key in configs[name]["run"] if key not in MAY_CHANGE_ON_RESUME]
            path = run.path / f"{name}.npz"
            saved[name] = read_progress(path, configs[name], fixed, "history") if args.resume else None
            if saved[name] is not None:
                Checkpoints(path, configs[name], None).check(saved[name])
    world.check_same(f"{vocabulary} {len(table.texts)}", "the data")
    run.open(saved)  # every check has passed on every rank: from here on rank 0 writes the run folder
    data = dict(source=table.source, rows=len(table.texts), note=table.note, text_column=args.text_column,
                numeric_columns=list(table.numeric_cols), target_column=table.target_col,
                split={split: len(r) for split, r in rows.items()}, vocab_size=vectorizer.vocab_size)
    constant = regression_metrics(y_test, np.full(len(y_test), y_train.mean()))
    summary = dict(command=["train_mm.py", *(sys.argv[1:] if argv is None else argv)],
                   config={**run_flags(args), "device": backend.get_device()}, ranks=world.size, data=data,
                   models=results, constant_baseline=constant, hardware=hardware_info())

    def write_results():  # after every epoch, so an interrupted run keeps what it did
        summary["wall_seconds"] = time.perf_counter() - started
        run.write_json(run.path / "results.json", summary)

    # -- the three models
    with run:  # Ctrl-C and SIGTERM stop at the next batch boundary
        for name in args.models:
            if run.stopping():  # came while a model diverged
                raise run.stopped()
            if name == "ridge":
                w, b, seconds = fit_ridge(table, rows, args.ridge_alpha)
                predictions[name] = ridge_predict(table.numeric[rows["test"]], w, b)
                results[name] = dict(status="finished", params=len(w) + 1, train_seconds=seconds, history=[],
                                     best_epoch=None, val_mse=regression_metrics(
                                         y_val, ridge_predict(table.numeric[rows["val"]], w, b))["mse"])
            else:
                seed_everything(args.seed)  # each model's initialisation is the same whichever others run
                model = build_model(name, vectorizer.vocab_size + 1, numeric.shape[1], args)
                print(f"{name}: {model.num_parameters():,} parameters")
                progress = saved[name] or Progress(record={"history": []}, epoch_rng=None, epochs_key="history")
                results[name] = progress.record
                results[name]["params"] = model.num_parameters()
                checkpoints = Checkpoints(run.path / f"{name}.npz", configs[name], write_results, run.is_main)
                try:
                    fit(name, model, splits["train"], splits["val"], args, progress, checkpoints, run)
                except Diverged as err:
                    results[name]["status"] = "diverged"
                    diverged.append(name)
                    print(stopped_diverged(name, err, len(results[name]["history"])), flush=True)
                    write_results()
                    continue
                predictions[name] = predict(model, splits["test"][0], splits["test"][1], args.batch_size)
            results[name]["test"] = regression_metrics(y_test, predictions[name])
            write_results()

    # -- report
    print(f"\ntest split ({len(rows['test'])} rows)")
    print(f"{'model':10s} {'params':>10s} {'train s':>8s} {'MSE':>9s} {'RMSE':>8s} {'MAE':>8s} {'R²':>7s}")
    lines = [(name, f"{r['params']:,}", f"{r['train_seconds']:.1f}", r["test"]) for name, r in results.items()
             if r.get("status") == "finished" and "test" in r]
    for name, params, seconds, m in lines + [("train mean", "1", "-", constant)]:  # the constant predictor
        print(f"{name:10s} {params:>10s} {seconds:>8s} {m['mse']:9.5f} {m['rmse']:8.4f} {m['mae']:8.4f} {m['r2']:7.3f}")
    for name in diverged:
        print(f"{name:10s} diverged: no result")
    write_results()
    if run.is_main:
        plot(run.path / "results.png", results, predictions, y_test)
    print(f"wrote {run.path / 'results.json'} and results.png ({summary['wall_seconds']:.0f}s in all)")
    if diverged:
        raise run_diverged(diverged, run.path / 'results.json')
    return summary


if __name__ == "__main__":
    run_main(main)
