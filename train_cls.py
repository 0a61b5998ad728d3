"""Train the paper's two document classifiers and compare them (PAPER.md section 2).

Summation (x * (pos + 1) -> Dense relu -> sum over the sequence -> Dense) against
attention (x + pos -> 4-head attention -> mean over the sequence -> Dense), both trained
in one run on the same data, batches and seed. Reports each model's best validation
(= test split) accuracy, parameter count, training time per epoch and inference time,
and how much faster summation is, beside the paper's numbers.

    python train_cls.py --dataset imdb --data-dir ../shared/data/imdb
    python train_cls.py --dataset ag_news --data-dir ../shared/data/ag_news --resplit 0.2
    python train_cls.py --quick --data-dir ../shared/data/20newsgroups    # a few minutes on 2 cores
    python train_cls.py --dataset reuters --data-dir ../shared/data --seq-len 512 --device gpu

Every protocol choice is a flag whose default is the paper's value. Writes
<out-dir>/<dataset>/results.json (after every epoch) and curves.png. docs/train_cls.md
says what differs from the paper.
"""
import argparse
import os
import statistics

import numpy as np

import minisum
from minisum import backend, runtime
from minisum.data.classification_sources import CLS_DATASETS, load_classification
from minisum.data.keras_text import KERAS_OOV_ID, WordTokenizer, keras_dataset_ids
from minisum.errors import UserError
from minisum.models import AttentionClassifier, SummationClassifier
from minisum.ops import binary_cross_entropy_with_logits, cross_entropy
from minisum.optim import KERAS_ADAM_EPS, AdamW, clip_grad_value

MODELS = ("summation", "attention")

# Best validation accuracy in the paper (PAPER.md section 2) and its speed-up claim.
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


def positive(kind):
    def parse(text):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    return parse


def non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def fraction(text):
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {text}")
    return value


def model_list(text):
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in MODELS]
    if unknown or not names or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"{text!r}: give distinct names among {', '.join(MODELS)}, comma-separated")
    return names


def parse_args(argv=None):
    p = runtime.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=CLS_DATASETS, default="20newsgroups")
    p.add_argument("--data-dir", help="folder with the dataset's files (or ../shared/data itself); "
                                      "default: the Hugging Face hub")
    p.add_argument("--models", type=model_list, default=list(MODELS), help="default: summation,attention")
    p.add_argument("--vocab-size", type=positive(int), default=10000, help="Keras Tokenizer num_words")
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
    p.add_argument("--train-limit", type=non_negative_int, help="train on a random subset of N texts (0: all)")
    p.add_argument("--test-limit", type=non_negative_int, help="validate on a random subset of N texts (0: all)")
    p.add_argument("--resplit", type=fraction, help="pool train and test and split again, this fraction for "
                                                    "testing (AG News, whose local train file is partial)")
    p.add_argument("--quick", action="store_true", help="preset: " + ", ".join(f"{k}={v}" for k, v in QUICK.items()))
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--seed", type=int, default=0, help="initialisation, batch order, --*-limit subsets, --resplit")
    p.add_argument("--out-dir", default="runs/cls", help="results go to OUT_DIR/DATASET/")
    args = p.parse_args(argv)
    if args.quick:  # parse again with the preset as defaults, so explicit flags override it
        p.set_defaults(**QUICK)
        args = p.parse_args(argv)
    if args.vocab_size < 2:
        raise UserError("--vocab-size must be at least 2: id 0 is padding, words start at 1")
    args.run_dir = os.path.join(args.out_dir, args.dataset)
    if os.path.exists(args.run_dir) and not os.path.isdir(args.run_dir):
        raise UserError(f"--out-dir: {args.run_dir} exists and is not a folder")
    return args


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
    else:  # the reference's Tokenizer: vocabulary from the training texts only
        tokenizer = WordTokenizer(num_words=args.vocab_size, maxlen=args.seq_len).fit(train_texts)
        x_train, x_test = tokenizer.transform(train_texts), tokenizer.transform(test_texts)
        words_seen = len(tokenizer.word_index)
        empty_train, empty_test = int((x_train == 0).all(1).sum()), int((x_test == 0).all(1).sum())
    if empty_train == len(x_train):
        raise UserError(f"{args.dataset}: all {len(x_train)} training texts are empty after lower-casing and "
                        "removing punctuation; check that the files in --data-dir hold the texts")
    if empty_train or empty_test:
        # Kept, as all-padding rows, like the reference does (e.g. 20 Newsgroups posts that were all quote).
        notes.append(f"{empty_train} training and {empty_test} test texts have no word in the vocabulary "
                     "and are kept (all padding, or the start id alone for IMDB and Reuters), as in the reference")
    info = {"classes": list(data.class_names), "n_train": len(x_train), "n_test": len(x_test),
            "words_seen": words_seen, "empty_train": empty_train, "empty_test": empty_test,
            "files": data.files, "notes": notes}
    return x_train, train_labels, x_test, test_labels, info


# ----- training --------------------------------------------------------------------------

def build_model(name, args, n_classes):
    backend.seed(args.seed)  # the same initial draws whatever the order of --models
    if name == "summation":
        return SummationClassifier(args.vocab_size, args.seq_len, args.d_model, n_classes)
    return AttentionClassifier(args.vocab_size, args.seq_len, args.d_model, n_classes, args.heads, args.head_dim,
                               attention_init=args.attention_init)


def loss_and_hits(logits, labels):
    """Mean loss and the number of correct predictions for a batch of int labels (B,).

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
    return loss, int(xp.sum(predicted == labels))


def train_epoch(model, optimizer, x, y, args, rng, desc):
    """One pass over the shuffled training set; returns (mean loss, accuracy)."""
    params = model.parameters()
    total_loss, hits = 0.0, 0
    steps = runtime.index_batches(len(x), args.batch_size, rng.permutation(len(x)))
    for idx in runtime.progress(steps, total=len(steps), desc=desc):
        labels = backend.to_device(y[idx])
        loss, batch_hits = loss_and_hits(model(minisum.tensor(x[idx])), labels)
        optimizer.zero_grad()
        loss.backward()
        clip_grad_value(params, args.clip_value)  # Keras' clipvalue
        optimizer.step()
        total_loss += loss.item() * len(idx)
        hits += batch_hits
    return total_loss / len(x), hits / len(x)


def evaluate(model, x, y, batch_size):
    """(mean loss, accuracy) over the whole split, without building a graph."""
    total_loss, hits = 0.0, 0
    with minisum.no_grad():
        for idx in runtime.index_batches(len(x), batch_size):
            loss, batch_hits = loss_and_hits(model(minisum.tensor(x[idx])), backend.to_device(y[idx]))
            total_loss += loss.item() * len(idx)
            hits += batch_hits
    return total_loss / len(x), hits / len(x)


def train_model(name, args, data, n_classes, result, on_epoch):
    """Train model `name` for args.epochs, filling `result` and calling on_epoch() after each epoch."""
    x_train, y_train, x_test, y_test = data
    model = build_model(name, args, n_classes)
    # Keras' Adam: epsilon 1e-7 added to sqrt(v), no weight decay.
    optimizer = AdamW(model.parameters(), lr=args.lr, eps=KERAS_ADAM_EPS, weight_decay=0.0, eps_style="keras")
    rng = np.random.default_rng(args.seed)  # the same batches for every model
    result.update(parameters=model.num_parameters(), history=[])
    print(f"{name}: {result['parameters']:,} parameters")
    for epoch in range(1, args.epochs + 1):
        model.train()
        with runtime.Timer() as train_time:
            loss, accuracy = train_epoch(model, optimizer, x_train, y_train, args, rng,
                                         desc=f"{name} {epoch}/{args.epochs}")
        model.eval()
        with runtime.Timer() as inference_time:
            val_loss, val_accuracy = evaluate(model, x_test, y_test, args.batch_size)
        result["history"].append({"epoch": epoch, "loss": loss, "accuracy": accuracy, "val_loss": val_loss,
                                  "val_accuracy": val_accuracy, "train_seconds": train_time.seconds,
                                  "inference_seconds": inference_time.seconds})
        print(f"{name} epoch {epoch}/{args.epochs}: loss {loss:.4f} acc {accuracy:.4f} | "
              f"val loss {val_loss:.4f} val acc {val_accuracy:.4f} | "
              f"train {train_time.seconds:.1f}s, inference {inference_time.seconds:.2f}s", flush=True)
        summarise(result)
        on_epoch()


def summarise(result):
    """Best epoch and typical timings. The median of the epochs, so that the first
    epoch's warm-up or a busy moment of a shared machine does not skew the speed-up."""
    history = result["history"]
    best = max(history, key=lambda h: h["val_accuracy"])
    result.update(best_val_accuracy=best["val_accuracy"], best_epoch=best["epoch"],
                  train_seconds_per_epoch=statistics.median(h["train_seconds"] for h in history),
                  inference_seconds=statistics.median(h["inference_seconds"] for h in history))


# ----- report ----------------------------------------------------------------------------

def speedup(results):
    """How many times faster summation trains and infers than attention (None without both)."""
    if not {"summation", "attention"} <= results.keys():
        return None
    s, a = results["summation"], results["attention"]
    return {"train": a["train_seconds_per_epoch"] / s["train_seconds_per_epoch"],
            "inference": a["inference_seconds"] / s["inference_seconds"], "paper": PAPER_SPEEDUP}


def print_summary(args, results):
    paper = PAPER_ACCURACY[args.dataset]
    print(f"\n{args.dataset}: best validation accuracy (paper's in brackets)")
    print(f"{'model':<10} {'accuracy':>15} {'epoch':>5} {'parameters':>11} {'train s/epoch':>13} {'inference s':>11}")
    for name, r in results.items():
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
    args = parse_args(argv)
    runtime.setup_device(args.device, args.seed)
    x_train, y_train, x_test, y_test, info = load_data(args)
    n_classes = len(info["classes"])
    print(f"{args.dataset}: {info['n_train']:,} training and {info['n_test']:,} test texts, {n_classes} classes, "
          f"length {args.seq_len}, vocabulary {args.vocab_size:,} ({info['words_seen']:,} words seen)")
    for note in info["notes"]:
        print(f"note: {note}")

    config = {k: v for k, v in vars(args).items() if k != "run_dir"}
    results = {}
    report = {"config": config, "data": info, "models": results, "hardware": runtime.hardware_info()}
    results_path = os.path.join(args.run_dir, "results.json")

    def save():  # after every epoch, so an interrupted run keeps what it did
        report["speedup"] = speedup(results)
        runtime.write_json(results_path, report)

    for name in args.models:
        results[name] = {}
        train_model(name, args, (x_train, y_train, x_test, y_test), n_classes, results[name], save)
    print_summary(args, results)
    plot_curves(os.path.join(args.run_dir, "curves.png"), results, args.dataset)
    print(f"wrote {results_path} and curves.png")
    return report


if __name__ == "__main__":
    runtime.run_main(main)
