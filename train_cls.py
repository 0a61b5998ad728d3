"""Train the paper's two document classifiers and compare them (docs/paper.md section 2).

Summation (x * (pos + 1) -> Dense relu -> sum over the sequence -> Dense) against
attention (x + pos -> 4-head attention -> mean over the sequence -> Dense), both trained
in one run on the same data, batches and seed. Reports each model's best validation
(= test split) accuracy, parameter count, training time per epoch and inference time,
and how much faster summation is, beside the paper's numbers.

    python train_cls.py --dataset imdb --data-dir ../shared/data/imdb
    python train_cls.py --dataset ag_news --data-dir ../shared/data/ag_news --resplit 0.2
    python train_cls.py --quick --data-dir ../shared/data/20newsgroups    # a few minutes on 2 cores
    python train_cls.py --dataset reuters --data-dir ../shared/data --seq-len 512 --device gpu
    python train_cls.py --dataset imdb --resume                         # continue that run, its own flags

Every protocol choice is a flag whose default is the paper's value. The run owns
<out-dir>/<dataset>/ and writes there run.json (its flags), results.json (after every
epoch), <model>.npz (a checkpoint per model after every epoch) and curves.png. Ctrl-C or
SIGTERM saves a checkpoint after the current batch (exit 130 or 143); --resume continues
from it. A model whose loss diverges stops alone (exit 3 at the end). docs/train_cls.md
says what differs from the paper.

    mpiexec -n 2 python train_cls.py --quick --data-dir ../shared/data/20newsgroups
                                            data-parallel, one process per core (docs/distributed.md)
"""
import statistics
from pathlib import Path

import numpy as np

import minisum
from minisum import backend, distributed
from minisum.checkpoint import fingerprint
from minisum.data.classification_sources import CLS_DATASETS, load_classification
from minisum.data.keras_text import KERAS_OOV_ID, WordTokenizer, keras_dataset_ids
from minisum.errors import UserError
from minisum.models import AttentionClassifier, SummationClassifier
from minisum.ops import binary_cross_entropy_with_logits, cross_entropy
from minisum.optim import KERAS_ADAM_EPS, AdamW, clip_grad_value
from minisum.run import arguments, memory, runtime
from minisum.run.arguments import SEED, at_least, between, names, positive
from minisum.run.folder import RunFolder, resumed, run_flags
from minisum.run.meter import Diverged, Meter, check_parameters, run_diverged, stopped_diverged, untrained_limit
from minisum.run.progress import Progress, begin, read_progress
from minisum.run.run import Run

MODELS = ("summation", "attention")

# Best validation accuracy in the paper (docs/paper.md section 2) and its speed-up claim.
PAPER_ACCURACY = {
    "imdb": {"attention": 0.87, "summation": 0.88},
    "20newsgroups": {"attention": 0.58, "summation": 0.65},
    "ag_news": {"attention": 0.91, "summation": 0.91},
    "reuters": {"attention": 0.77, "summation": 0.81},
}
PAPER_SPEEDUP = "6-18x (up to ~18x at 512 tokens)"

# --quick: a few minutes on 2 CPU cores (docs/train_cls.md has its results); explicit flags
# win. With 10-20x fewer steps than the paper's 20 full epochs, lr 1e-4 stays far from
# converged (0.22 on 20 Newsgroups after 10 epochs of 2,000 texts), hence 1e-3.
QUICK = dict(train_limit=4000, test_limit=2000, epochs=6, seq_len=128, d_model=64, head_dim=64, lr=1e-3)
MAY_CHANGE_ON_RESUME = ("epochs", "models", "quick", "data_dir")
RUN_FILES = ("results.json", "curves.png", "*.npz")


def parse_args(argv=None):
    p = arguments.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=CLS_DATASETS, default="20newsgroups")
    p.add_argument("--data-dir", help="folder with the dataset's files (or ../shared/data itself); "
                                      "default: the Hugging Face hub")
    p.add_argument("--models", type=names(MODELS), default=list(MODELS), help="default: summation,attention")
    p.add_argument("--vocab-size", type=at_least(2), default=10000, help="Keras Tokenizer num_words; at least 2 "
                                                                          "(id 0 is padding, words start at 1)")
    p.add_argument("--seq-len", type=positive(int), default=256, help="pad/truncate at the front to this")
    p.add_argument("--d-model", type=positive(int), default=256, help="embedding size")
    p.add_argument("--heads", type=positive(int), default=4, help="attention heads")
    p.add_argument("--head-dim", type=positive(int), default=256, help="attention key size per head")
    p.add_argument("--attention-init", choices=("keras", "keras3"), default="keras",
                   help="Glorot fans of the attention kernels: Keras 2.12's (the reference's pin) or Keras 3's")
    p.add_argument("--batch-size", type=positive(int), default=64)
    p.add_argument("--lr", type=positive(float), default=1e-4, help="Adam learning rate")
    p.add_argument("--clip-value", type=positive(float), default=1.0, help="clip each gradient entry to +-this")
    p.add_argument("--epochs", type=positive(int), default=20)
    p.add_argument("--train-limit", type=at_least(0), help="train on a random subset of N texts (0: all)")
    p.add_argument("--test-limit", type=at_least(0), help="validate on a random subset of N texts (0: all)")
    p.add_argument("--resplit", type=between(0, 1, closed_low=False), help="pool train and test and split again, "
                   "this fraction for testing (AG News, whose local train file is partial)")
    p.add_argument("--quick", action="store_true", help="preset: " + ", ".join(f"{k}={v}" for k, v in QUICK.items()))
    p.add_argument("--seed", type=SEED, default=0, help="initialisation, batch order, --*-limit subsets, --resplit")
    arguments.add_run_flags(p, "runs/cls", "the run's folder is OUT_DIR/DATASET: results, checkpoints, curves")
    args = p.parse_args(argv)
    if args.quick:  # parse again with the preset as defaults, so explicit flags override it
        p.set_defaults(**QUICK)
        args = p.parse_args(argv)
    if args.resume:
        args = resumed(p, argv, args, Path(args.out_dir) / args.dataset, MAY_CHANGE_ON_RESUME)
    return args


def settle_args(run):
    """The device, the memory a step needs and the run folder, all checked before any data is
    read."""
    args = run.args
    runtime.setup_device(arguments.device(args), args.seed)
    activations = {"embeddings": (2, (args.batch_size, args.seq_len, args.d_model))}  # each with its gradient
    if "attention" in args.models:
        activations["attention scores"] = (2, (args.batch_size, args.heads, args.seq_len, args.seq_len))
    memory.check_fits(args.vocab_size * args.d_model, activations, "lower --batch-size, --seq-len or --d-model")
    run.claim()


# ----- data ------------------------------------------------------------------------------

def subsample(texts, labels, limit, rng):
    """A random subset of `limit` examples, in their original order (all of them if fewer, or no limit)."""
    if not limit or limit >= len(texts):
        return texts, labels
    keep = np.sort(rng.choice(len(texts), size=limit, replace=False))
    return [texts[i] for i in keep], labels[keep]


def load_data(args):
    """Word-id matrices and labels for both splits, plus what results.json should say about them."""
    data = load_classification(args.dataset, args.data_dir)
    train_texts, train_labels = data.train_texts, data.train_labels
    test_texts, test_labels = data.test_texts, data.test_labels
    notes = [data.note] if data.note else []
    rng = np.random.default_rng(args.seed)
    if args.resplit:
        texts, labels = train_texts + test_texts, np.concatenate([train_labels, test_labels])
        order = rng.permutation(len(texts))
        cut = len(texts) - round(len(texts) * args.resplit)
        train_texts, train_labels = [texts[i] for i in order[:cut]], labels[order[:cut]]
        test_texts, test_labels = [texts[i] for i in order[cut:]], labels[order[cut:]]
        notes.append(f"train and test pooled ({len(texts)} texts) and split again, "
                     f"{args.resplit:g} for testing (--resplit)")
    train_texts, train_labels = subsample(train_texts, train_labels, args.train_limit, rng)
    test_texts, test_labels = subsample(test_texts, test_labels, args.test_limit, rng)
    for split, texts in (("training", train_texts), ("test", test_texts)):
        if not texts:
            raise UserError(f"{args.dataset}: the {split} split has no texts; check the files in --data-dir")

    if data.word_ranks:  # IMDB and Reuters: keras.datasets' ids from word ranks of the whole dataset
        if args.vocab_size <= KERAS_OOV_ID:
            raise UserError(f"--vocab-size must be more than {KERAS_OOV_ID} for {args.dataset}: Keras' ids "
                            "0, 1 and 2 are padding, start and out-of-vocabulary")
        x_train = keras_dataset_ids(train_texts, args.vocab_size, args.seq_len)
        x_test = keras_dataset_ids(test_texts, args.vocab_size, args.seq_len)
        words_seen = max((int(ranks.max()) for ranks in train_texts + test_texts if len(ranks)), default=0)
        empty_train, empty_test = (sum(len(ranks) == 0 for ranks in texts) for texts in (train_texts, test_texts))
        vocabulary = fingerprint(x_train.tobytes())  # the dataset's own ranks decide the ids
    else:  # the reference's Tokenizer: vocabulary from the training texts only
        tokenizer = WordTokenizer(num_words=args.vocab_size, maxlen=args.seq_len).fit(train_texts)
        x_train, x_test = tokenizer.transform(train_texts), tokenizer.transform(test_texts)
        words_seen = len(tokenizer.word_index)
        empty_train, empty_test = int((x_train == 0).all(1).sum()), int((x_test == 0).all(1).sum())
        used = sorted((i, word) for word, i in tokenizer.word_index.items() if i < args.vocab_size)
        vocabulary = fingerprint(" ".join(word for _, word in used))
    if empty_train == len(x_train):
        raise UserError(f"{args.dataset}: all {len(x_train)} training texts are empty after lower-casing and "
                        "removing punctuation; check that the files in --data-dir hold the texts")
    if empty_train or empty_test:
        # Kept, as all-padding rows, like the reference does (e.g. 20 Newsgroups posts that were all quote).
        notes.append(f"{empty_train} training and {empty_test} test texts have no word in the vocabulary "
                     "and are kept (all padding, or the start id alone for IMDB and Reuters), as in the reference")
    info = {"classes": list(data.class_names), "n_train": len(x_train), "n_test": len(x_test),
            "words_seen": words_seen, "empty_train": empty_train, "empty_test": empty_test,
            "files": data.files, "notes": notes, "vocabulary": vocabulary}
    return x_train, train_labels, x_test, test_labels, info


# ----- training --------------------------------------------------------------------------

def model_config(name, args, n_classes):
    config = dict(vocab_size=args.vocab_size, seq_len=args.seq_len, d_model=args.d_model, n_classes=n_classes)
    return config if name == "summation" else dict(config, n_heads=args.heads, head_dim=args.head_dim,
                                                   attention_init=args.attention_init)


def build_model(name, args, n_classes):
    backend.seed(args.seed)  # the same initial draws whatever the order of --models
    kind = SummationClassifier if name == "summation" else AttentionClassifier
    return kind(**model_config(name, args, n_classes))


def checkpoint_config(name, args, info):
    return {"model": model_config(name, args, len(info["classes"])), "run": run_flags(args),
            "fingerprint": info["vocabulary"], "fingerprint_of": "vocabulary (the data or its flags changed)"}


def loss_and_hits(logits, labels):
    """Mean loss and the number of correct predictions for a batch of int labels (B,), both
    on the device.

    One logit per row: a binary task, sigmoid + binary cross-entropy, class 1 when the
    logit is positive. Otherwise softmax cross-entropy and the argmax.
    """
    xp = backend.get_array_module(logits.data)
    if logits.shape[1] == 1:
        targets = labels.astype(np.float32)[:, None]  # (B, 1)
        loss = binary_cross_entropy_with_logits(logits, targets)
        predicted = (logits.data[:, 0] > 0).astype(labels.dtype)
    else:
        loss = cross_entropy(logits, labels)
        predicted = logits.data.argmax(axis=1)
    return loss, xp.sum(predicted == labels)


def train_model(name, run, data, info, progress, on_epoch):
    """Train model `name` up to --epochs from `progress` (its checkpoint's, or a fresh one),
    filling progress.record, its part of results.json, and calling on_epoch() after each epoch."""
    args, world, (x_train, y_train, x_test, y_test) = run.args, run.world, data  # the data on the device
    path, record = run.path / f"{name}.npz", progress.record
    model = build_model(name, args, len(info["classes"]))
    # Keras' Adam: epsilon 1e-7 added to sqrt(v), no weight decay.
    optimizer = AdamW(model.parameters(), lr=args.lr, eps=KERAS_ADAM_EPS, weight_decay=0.0, eps_style="keras")
    rng = np.random.default_rng(args.seed)  # the same batches for every model
    config, limit = checkpoint_config(name, args, info), untrained_limit(len(info["classes"]))
    if not begin(name, path, model, optimizer, rng, progress, args.epochs):
        return
    world.broadcast_parameters(model.parameters())
    record.update(parameters=model.num_parameters(), status="training")
    print(f"{name}: {record['parameters']:,} parameters")

    for epoch in range(progress.done + 1, args.epochs + 1):
        progress.epoch_rng, meter = rng.bit_generator.state, progress.meter(world)
        order = backend.to_device(rng.permutation(len(x_train)))  # one copy an epoch; batches are slices of it
        steps = runtime.index_batches(len(x_train), args.batch_size, order)
        model.train()
        with runtime.Timer() as train_time:
            for idx in runtime.progress(steps[meter.batches:], total=len(steps) - meter.batches,
                                        desc=f"{name} {epoch}/{args.epochs}"):
                mine = world.mine(idx)  # this rank's rows of the batch (all of them with one rank)
                share = len(mine) / len(idx)
                loss, hits = train_step(model, optimizer, x_train[mine], y_train[mine], world, share, args.clip_value)
                meter.add(loss, weight=len(idx), hits=hits, count=len(idx), share=share)
                if run.stopping():
                    break
        signum, finished = run.stopping(), meter.batches == len(steps)  # read once: the state saved is this
        meter.seconds += train_time.seconds
        meter.read(limit)  # the epoch's one read of the device's sums, and the divergence check
        if finished:
            model.eval()
            with runtime.Timer() as inference_time:
                val = evaluate(model, x_test, y_test, args.batch_size, world).read(limit)
            record["history"].append({"epoch": epoch, "loss": meter.loss, "accuracy": meter.accuracy,
                                      "val_loss": val.loss, "val_accuracy": val.accuracy,
                                      "train_seconds": meter.seconds, "inference_seconds": inference_time.seconds})
            summarise(record)
            progress.epoch_rng, progress.partial = rng.bit_generator.state, None
            print(f"{name} epoch {epoch}/{args.epochs}: loss {meter.loss:.4f} acc {meter.accuracy:.4f} | "
                  f"val loss {val.loss:.4f} val acc {val.accuracy:.4f} | "
                  f"train {meter.seconds:.1f}s, inference {inference_time.seconds:.2f}s", flush=True)
        else:  # stopped mid-epoch: the checkpoint keeps the epoch's progress
            progress.partial = meter.state()
        record["status"] = "finished" if finished and epoch == args.epochs else "interrupted" if signum else "training"
        check_parameters(model.parameters())
        run.checkpoint(path, model, optimizer, config, progress)
        if finished:
            on_epoch()
        if signum:
            raise run.stopped_at(name, epoch, None if finished else meter.batches, path)
    record["status"] = "finished"


def train_step(model, optimizer, x, y, world, share, clip):
    """Zero, forward and loss, backward, the ranks' gradients summed (each weighted by its rank's
    share of the batch: the whole batch's gradient on every rank), Keras' clipvalue, step.
    Returns the loss and the hits (0 and None on a rank without rows: a last batch smaller
    than the world, where this rank only joins the sum)."""
    optimizer.zero_grad()
    loss, hits = 0.0, None
    if len(y):
        loss, hits = loss_and_hits(model(minisum.tensor(x)), y)
        loss.backward(free_graph=True)  # the activations go as backward passes them
        loss = loss.data
    world.sum_gradients(optimizer.params, share)
    clip_grad_value(optimizer.params, clip)
    optimizer.step()
    return loss, hits


def evaluate(model, x, y, batch_size, world):
    """A Meter of the loss and accuracy over the whole split, without building a graph; each
    rank on its share of every batch."""
    meter = Meter(world=world)
    with minisum.no_grad():
        for batch in runtime.index_batches(len(x), batch_size):
            mine, size = world.mine(batch), batch.stop - batch.start
            share = (mine.stop - mine.start) / size
            if share == 0:  # a last batch smaller than the world
                meter.add(0.0, weight=size, count=size)
                continue
            loss, hits = loss_and_hits(model(minisum.tensor(x[mine])), y[mine])
            meter.add(loss.data, weight=size, hits=hits, count=size, share=share)
    return meter


def summarise(result):
    """Best epoch and typical timings. The median of the epochs, so that the first
    epoch's warm-up or a busy moment of a shared machine does not skew the speed-up."""
    history = result["history"]
    best = max(history, key=lambda h: h["val_accuracy"])
    result.update(best_val_accuracy=best["val_accuracy"], best_epoch=best["epoch"],
                  train_seconds_per_epoch=statistics.median(h["train_seconds"] for h in history),
                  inference_seconds=statistics.median(h["inference_seconds"] for h in history))


def drop_best(result):
    """A diverged model reports no best metric (its history keeps the epochs before it diverged)."""
    for key in ("best_val_accuracy", "best_epoch", "train_seconds_per_epoch", "inference_seconds"):
        result.pop(key, None)
    result["status"] = "diverged"


# ----- report ----------------------------------------------------------------------------

def speedup(results):
    """How many times faster summation trains and infers than attention (None without both)."""
    finished = {name for name, r in results.items() if "best_val_accuracy" in r}
    if not {"summation", "attention"} <= finished:
        return None
    s, a = results["summation"], results["attention"]
    return {"train": a["train_seconds_per_epoch"] / s["train_seconds_per_epoch"],
            "inference": a["inference_seconds"] / s["inference_seconds"], "paper": PAPER_SPEEDUP}


def print_summary(args, results):
    paper = PAPER_ACCURACY[args.dataset]
    print(f"\n{args.dataset}: best validation accuracy (paper's in brackets)")
    print(f"{'model':<10} {'accuracy':>15} {'epoch':>5} {'parameters':>11} {'train s/epoch':>13} {'inference s':>11}")
    for name, r in results.items():
        if "best_val_accuracy" not in r:
            print(f"{name:<10} {r.get('status', 'no epoch'):>15}")
            continue
        print(f"{name:<10} {r['best_val_accuracy']:>7.4f} ({paper[name]:.2f}) {r['best_epoch']:>5} "
              f"{r['parameters']:>11,} {r['train_seconds_per_epoch']:>13.2f} {r['inference_seconds']:>11.2f}")
    gain = speedup(results)
    if gain:
        print(f"summation is {gain['train']:.1f}x faster to train and {gain['inference']:.1f}x faster at "
              f"inference than attention (paper: {PAPER_SPEEDUP})")


def plot_curves(path, results, dataset):
    plt = runtime.pyplot()

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for name, r in results.items():
        epochs = [h["epoch"] for h in r["history"]]
        line, = ax_loss.plot(epochs, [h["loss"] for h in r["history"]], marker="o", label=f"{name} train")
        ax_loss.plot(epochs, [h["val_loss"] for h in r["history"]], marker="o", linestyle=":",
                     color=line.get_color(), label=f"{name} validation")
        ax_acc.plot(epochs, [h["val_accuracy"] for h in r["history"]], marker="o", color=line.get_color(),
                    label=name)
        ax_acc.axhline(PAPER_ACCURACY[dataset][name], linestyle="--", color=line.get_color(), alpha=0.6,
                       label=f"{name}, paper")
    ax_loss.set(xlabel="epoch", ylabel="loss", title=f"{dataset}: loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title=f"{dataset}: validation accuracy")
    for ax in (ax_loss, ax_acc):
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    """Run the benchmark; returns what results.json holds."""
    world = distributed.world()  # one rank without mpiexec
    distributed.quiet_other_ranks(world)
    args = parse_args(argv)
    run = Run(args, RunFolder(Path(args.out_dir) / args.dataset, RUN_FILES), world)
    settle_args(run)
    x_train, y_train, x_test, y_test, info = load_data(args)
    world.check_same(f"{info['vocabulary']} {info['n_train']} {info['n_test']}", "the data")
    n_classes = len(info["classes"])
    print(f"{args.dataset}: {info['n_train']:,} training and {info['n_test']:,} test texts, {n_classes} classes, "
          f"length {args.seq_len}, vocabulary {args.vocab_size:,} ({info['words_seen']:,} words seen)")
    for note in info["notes"]:
        print(f"note: {note}")
    results = run.folder.earlier_records(args)
    progress = {}  # every checkpoint is checked before the first batch
    for name in args.models:
        config = checkpoint_config(name, args, info)
        fixed = [key for key in config["run"] if key not in MAY_CHANGE_ON_RESUME]
        saved = read_progress(run.path / f"{name}.npz", config, fixed, "history") if args.resume else None
        progress[name] = saved or Progress(record={"history": []}, epoch_rng=None, epochs_key="history")
        results[name] = progress[name].record

    run.open(progress)  # every check has passed on every rank: from here on rank 0 writes the run folder
    report = {"config": {**run_flags(args), "device": backend.get_device()}, "ranks": world.size, "data": info,
              "models": results, "hardware": runtime.hardware_info()}
    results_path = run.path / "results.json"

    def save():  # after every epoch, so an interrupted run keeps what it did
        report["speedup"] = speedup(results)
        run.write_json(results_path, report)

    data = tuple(backend.to_device(a) for a in (x_train, y_train, x_test, y_test))  # once, not per batch
    diverged = []
    with run:  # Ctrl-C and SIGTERM stop at the next batch boundary
        for name in args.models:
            if run.stopping():  # came while a model diverged
                raise run.stopped()
            try:
                train_model(name, run, data, info, progress[name], save)
            except Diverged as err:
                drop_best(results[name])
                diverged.append(name)
                print(stopped_diverged(name, err, len(results[name]["history"])), flush=True)
            finally:
                save()
    print_summary(args, results)
    if run.is_main:
        plot_curves(run.path / "curves.png", results, args.dataset)
    print(f"wrote {results_path} and curves.png")
    if diverged:
        raise run_diverged(diverged, results_path)
    return report


if __name__ == "__main__":
    runtime.run_main(main)
