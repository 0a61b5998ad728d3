"""The paper's language-modeling benchmark (PAPER.md, section 1): attention, summation, hybrid.

    python train_lm.py --quick                          a small preset, minutes on a laptop CPU
    python train_lm.py --device gpu                     the paper's protocol
    python train_lm.py --resume                         continue the run in --out-dir
    python train_lm.py --resume --analyze               the representation figure of a finished run
    python train_lm.py --generate "The game"            sample text from the run's first model

Every choice of the paper is a flag whose default is the paper's value (shown after the
flag in the usage); --quick changes some of them, and flags given explicitly win over the
preset. Without --data-dir the data comes from the Hugging Face hub (offline, point
--data-dir at a local copy, e.g. ../shared/data/wikitext-2).

The variants are trained one after the other, from the same seed, on the same samples in
the same order. The run writes to --out-dir:
    results.json         config, data sizes, per-epoch metrics, timing, hardware
    loss_curves.png      train and validation loss, validation accuracy per epoch
    <model>.npz          the latest checkpoint of each model, rewritten after every epoch
    tokenizer.json       the tokenizer, so --resume and --generate see the same ids
    representations.png  with --analyze
Ctrl-C saves a checkpoint at the end of the current batch; --resume picks it up there.
"""
import argparse
import itertools
import math
import signal
import sys
import time
from pathlib import Path

import numpy as np

from minisum import backend, runtime
from minisum.atomic import atomic_open
from minisum.autograd import no_grad
from minisum.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from minisum.data.gpt2_tokenizer import END_OF_TEXT, LMTokenizer, load_tokenizer
from minisum.data.lm_samples import batches, count_tokens, make_samples
from minisum.data.lm_sources import LM_DATASETS, load_lm_texts
from minisum.errors import UserError
from minisum.models import MIXERS, LanguageModel
from minisum.optim import AdamW
from minisum.representation import plot_representations
from minisum.training import lm_train_step

# The paper's protocol; each one is a flag of the same name.
PAPER = dict(dataset="wikitext2", models="attention,summation,hybrid", tokenizer="gpt2", train_samples=5000,
             valid_samples=1000, context=256, batch_size=8, lr=1e-4, epochs=10, d_model=512, layers=4, heads=8,
             weight_decay=0.0, seed=0)  # the reference sets no seed; 0 is ours
# --quick: the three variants in under 10 minutes on 2 CPU cores, tokenizer training included.
# A 4,096-token BPE shrinks the output layer 12x; the higher rate makes 3 short epochs visibly learn.
QUICK = dict(tokenizer="bpe:4096", train_samples=2000, valid_samples=200, context=64, batch_size=16, lr=1e-3,
             epochs=3, d_model=128, layers=2, heads=4)
# Flags that must not change between a run and its --resume (the epochs may grow).
RESUME_KEYS = ("dataset", "tokenizer", "train_samples", "valid_samples", "context", "batch_size", "lr",
               "d_model", "layers", "heads", "weight_decay", "seed")

# Validation perplexity and accuracy after the last epoch (PAPER.md, section 1).
PAPER_RESULTS = {
    "wikitext2": {"attention": (300, 0.22), "summation": (331, 0.21), "hybrid": (274, 0.23)},
    "cmu_books": {"attention": (286, 0.19), "summation": (335, 0.17), "hybrid": (269, 0.19)},
    "ag_news": {"attention": (64, 0.35), "summation": (79, 0.32), "hybrid": (66, 0.35)},
    "imdb": {"attention": (150, 0.22), "summation": (198, 0.19), "hybrid": (145, 0.22)},
}
DATASET_NAMES = {"wikitext2": "WikiText-2", "cmu_books": "CMU Book Summaries", "ag_news": "AG News", "imdb": "IMDB"}
ANALYSIS_POSITIONS = 2000  # token positions drawn per model for --analyze: stable curves, a quick PCA


# ----- command line ---------------------------------------------------------------------

def parse_args(argv):
    p = runtime.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
               formatter_class=argparse.RawDescriptionHelpFormatter)
    # The metavar of each flag of the protocol shows its default, the paper's value.
    p.add_argument("--dataset", metavar=PAPER["dataset"], help=f"one of {', '.join(LM_DATASETS)}")
    p.add_argument("--models", metavar=PAPER["models"], help=f"comma-separated, from {', '.join(MIXERS)}")
    p.add_argument("--tokenizer", metavar=PAPER["tokenizer"], help="gpt2, or bpe:N (a byte-level BPE of N "
                   "tokens trained on the training split)")
    p.add_argument("--train-samples", type=int, metavar=str(PAPER["train_samples"]),
                   help="the first N training samples")
    p.add_argument("--valid-samples", type=int, metavar=str(PAPER["valid_samples"]),
                   help="the first N validation samples")
    p.add_argument("--context", type=int, metavar=str(PAPER["context"]), help="tokens per sample (longer ones are "
                   "cut) and size of the positional table")
    p.add_argument("--batch-size", type=int, metavar=str(PAPER["batch_size"]))
    p.add_argument("--lr", type=float, metavar=str(PAPER["lr"]), help="Adam's learning rate")
    p.add_argument("--epochs", type=int, metavar=str(PAPER["epochs"]))
    p.add_argument("--d-model", type=int, metavar=str(PAPER["d_model"]))
    p.add_argument("--layers", type=int, metavar=str(PAPER["layers"]))
    p.add_argument("--heads", type=int, metavar=str(PAPER["heads"]))
    p.add_argument("--weight-decay", type=float, metavar=str(PAPER["weight_decay"]))
    p.add_argument("--seed", type=int, metavar=str(PAPER["seed"]), help="model initialisation and batch order")
    p.add_argument("--quick", action="store_true",
                   help="small preset: " + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items()))
    p.add_argument("--data-dir", help="local copy of the dataset in its release format (default: the HF hub)")
    p.add_argument("--tokenizer-dir", help="folder with GPT-2's vocab.json and merges.txt (default: the HF hub)")
    p.add_argument("--out-dir", default="runs/lm", help="results, checkpoints and figures (default: %(default)s)")
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"], help="gpu needs CuPy (default: %(default)s)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out-dir")
    p.add_argument("--analyze", action="store_true", help="after training, draw the representation figure")
    p.add_argument("--generate", metavar="PROMPT", help="print text sampled from a trained model, then exit")
    p.add_argument("--checkpoint", help="the checkpoint for --generate (default: --out-dir/<first model>.npz)")
    p.add_argument("--max-new-tokens", type=int, default=60, help="for --generate (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=0.8, help="for --generate; 0 is greedy (default: %(default)s)")
    p.add_argument("--top-k", type=int, default=40, help="for --generate (default: %(default)s)")
    args = p.parse_args(argv)
    for key, value in PAPER.items():
        if getattr(args, key) is None:
            setattr(args, key, QUICK.get(key, value) if args.quick else value)
    return args


def check_args(args):
    """Every check that needs no data, before anything is read or written; returns the model names."""
    models = [name.strip() for name in args.models.split(",")]
    for name in models:
        if name not in MIXERS:
            raise UserError(f"unknown model {name!r} in --models; choose from {', '.join(MIXERS)}")
    if len(set(models)) != len(models):
        raise UserError(f"--models names a model twice: {args.models}")
    if args.dataset not in LM_DATASETS:
        raise UserError(f"unknown dataset {args.dataset!r}; choose one of {', '.join(LM_DATASETS)}")
    for key in ("train_samples", "valid_samples", "batch_size", "epochs", "d_model", "layers", "heads",
                "max_new_tokens", "top_k"):
        if getattr(args, key) < 1:
            raise UserError(f"--{key.replace('_', '-')} must be at least 1, got {getattr(args, key)}")
    if args.context < 2:
        raise UserError(f"--context must be at least 2 (one input and one target token), got {args.context}")
    if not args.lr > 0 or not args.weight_decay >= 0 or not args.temperature >= 0:
        raise UserError(f"--lr must be > 0, --weight-decay and --temperature >= 0; got {args.lr}, "
                        f"{args.weight_decay}, {args.temperature}")
    if args.d_model % args.heads:
        raise UserError(f"--d-model {args.d_model} is not divisible by --heads {args.heads}")
    out = Path(args.out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out-dir {out} exists and is not a folder")
    return models


def run_config(args):
    """What results.json and the checkpoints record about the run."""
    keys = list(PAPER) + ["quick", "data_dir", "tokenizer_dir", "device"]
    return {key: getattr(args, key) for key in keys}


# ----- data -----------------------------------------------------------------------------

def prepare_data(args, out_dir):
    """The tokenizer (the run's own on --resume) and the train and validation samples."""
    texts = load_lm_texts(args.dataset, args.data_dir)
    saved = out_dir / "tokenizer.json"
    if args.resume and saved.is_file():
        tokenizer = read_tokenizer(saved, args.tokenizer)
    elif args.resume:
        raise UserError(f"nothing to resume in {out_dir}: it has no tokenizer.json; run without --resume")
    else:
        print(f"tokenizer {args.tokenizer}...", flush=True)
        tokenizer = load_tokenizer(args.tokenizer, args.tokenizer_dir, texts["train"])
    train = make_samples(texts["train"], tokenizer, args.context, args.train_samples)
    valid = make_samples(texts["valid"], tokenizer, args.context, args.valid_samples)
    if not train or not valid:
        raise UserError(f"{args.dataset} gives no {'training' if not train else 'validation'} text of 2 or more tokens")
    print(f"{DATASET_NAMES[args.dataset]}: {len(train):,} training samples ({count_tokens(train):,} tokens), "
          f"{len(valid):,} validation samples ({count_tokens(valid):,} tokens), vocabulary {tokenizer.vocab_size:,}")
    return tokenizer, train, valid


def save_tokenizer(tokenizer, path):
    """Write tokenizer.json atomically (a bpe:N tokenizer is learned from the data: keep it)."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(tokenizer.backend.to_str())


def read_tokenizer(path, name):
    from tokenizers import Tokenizer

    try:
        backend_tokenizer = Tokenizer.from_file(str(path))
    except Exception as err:  # the Rust loader raises plain Exception for unreadable files
        raise UserError(f"cannot read the tokenizer {path}: {err}") from None
    return LMTokenizer(name=name, vocab_size=backend_tokenizer.get_vocab_size(),
                       pad_id=backend_tokenizer.token_to_id(END_OF_TEXT), backend=backend_tokenizer)


# ----- training -------------------------------------------------------------------------

class Meter:
    """Running sums over one pass. The paper's loss is the mean of the per-batch losses;
    its accuracy counts argmax hits over all non-pad targets."""

    def __init__(self, loss_sum=0.0, batches=0, hits=0, targets=0, seconds=0.0):
        self.loss_sum, self.batches, self.hits, self.targets, self.seconds = loss_sum, batches, hits, targets, seconds

    def add(self, loss, hits, targets, pad_id):
        self.loss_sum += loss
        self.batches += 1
        self.hits += int(hits)
        self.targets += int((targets != pad_id).sum())

    def metrics(self):
        loss = self.loss_sum / self.batches
        return {"loss": loss, "ppl": math.exp(loss) if loss < 700 else math.inf, "acc": self.hits / self.targets,
                "seconds": self.seconds, "tokens_per_s": self.targets / max(self.seconds, 1e-9)}


class Diverged(Exception):
    """The loss became NaN or infinite."""


class Interrupted(Exception):
    """Ctrl-C in the middle of an epoch; carries the epoch's progress so far."""

    def __init__(self, meter):
        self.meter = meter


class StopRequest:
    """Ctrl-C sets a flag that training reads between batches, so that the checkpoint it
    saves never holds half an update. A second Ctrl-C stops at once."""

    requested = False

    def __enter__(self):
        self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, self.previous)
        print("\nCtrl-C: saving a checkpoint after this batch (Ctrl-C again to quit at once)", file=sys.stderr)

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self.previous)


def train_epoch(model, optimizer, samples, args, pad_id, rng, stop, desc, meter):
    """One shuffled pass over `samples`, continuing `meter` (batches already done are skipped)."""
    model.train()
    total = math.ceil(len(samples) / args.batch_size)
    pending = itertools.islice(batches(samples, args.batch_size, pad_id, shuffle=True, rng=rng), meter.batches, None)
    bar = runtime.progress(pending, total=total - meter.batches, desc=desc)
    for inputs, targets in bar:
        start = time.perf_counter()
        targets = backend.to_device(targets)
        loss, hits = lm_train_step(model, optimizer, backend.to_device(inputs), targets, pad_id)
        value = loss.item()
        if not math.isfinite(value):  # the model is dropped unsaved: its last checkpoint stays good
            raise Diverged(f"the training loss became {value} at batch {meter.batches + 1}")
        meter.add(value, hits, targets, pad_id)
        meter.seconds += time.perf_counter() - start
        if hasattr(bar, "set_postfix_str"):  # a plain iterator when tqdm is missing
            bar.set_postfix_str(f"loss {value:.3f}, {meter.targets / meter.seconds:,.0f} tok/s", refresh=False)
        if stop.requested:
            raise Interrupted(meter)
    return meter.metrics()


def evaluate(model, samples, batch_size, pad_id, desc):
    """Validation metrics, without gradients, in eval mode."""
    model.eval()
    meter = Meter()
    start = time.perf_counter()
    total = math.ceil(len(samples) / batch_size)
    with no_grad():
        for inputs, targets in runtime.progress(batches(samples, batch_size, pad_id), total=total, desc=desc):
            targets = backend.to_device(targets)
            loss, hits = model.loss(backend.to_device(inputs), targets, pad_id)
            value = loss.item()
            if not math.isfinite(value):
                raise Diverged(f"the validation loss became {value}")
            meter.add(value, hits, targets, pad_id)
    meter.seconds = time.perf_counter() - start
    return meter.metrics()


def build_model(name, args, vocab_size):
    backend.seed(args.seed)  # every variant starts from the same draws (identical embeddings)
    return LanguageModel(vocab_size, args.d_model, args.layers, args.heads, max_len=args.context, mixer=name)


def read_resume_state(name, path, args):
    """The checkpoint's saved state for --resume (None: start this model fresh), after
    checking that it was made with the same flags."""
    if not path.is_file():
        print(f"{name}: no checkpoint in {path.parent}, starting from epoch 1")
        return None
    ckpt = read_checkpoint(path)
    saved = ckpt["config"].get("run", {})
    changed = [key for key in RESUME_KEYS if saved.get(key) != getattr(args, key)]
    if changed:
        was = ", ".join(f"--{key.replace('_', '-')} {saved.get(key)}" for key in changed)
        now = ", ".join(f"{getattr(args, key)}" for key in changed)
        raise UserError(f"{path} was trained with {was}, this run asks for {now}: "
                        "give the same flags to --resume, or use another --out-dir")
    return ckpt["extra"]


def train_model(name, args, record, resume_state, data, out_dir, stop):
    """Train one variant up to --epochs, filling `record` (its part of results.json) as it goes."""
    tokenizer, train, valid = data
    path = out_dir / f"{name}.npz"
    model = build_model(name, args, tokenizer.vocab_size)
    optimizer = AdamW(model.parameters(), lr=args.lr, eps=1e-8, weight_decay=args.weight_decay)
    rng = np.random.default_rng(args.seed)  # the batch order; the same for every variant
    meter = Meter()
    config = {"model": model.config, "run": run_config(args)}
    record.update(parameters=int(model.num_parameters()), checkpoint=str(path))
    if resume_state is not None:
        record["epochs"] = resume_state["record"]["epochs"]
    done = len(record["epochs"])
    if done >= args.epochs:
        record["status"] = "finished"
        print(f"{name}: finished ({done} epochs), nothing to resume")
        return
    if resume_state is not None:
        load_checkpoint(path, model, optimizer)
        rng.bit_generator.state = resume_state["rng"]
        meter = Meter(**resume_state["partial"]) if resume_state["partial"] else Meter()
    record["status"] = "training"
    where = f", resuming epoch {done + 1} after batch {meter.batches}" if resume_state else ""
    print(f"{name}: {record['parameters']:,} parameters{where}", flush=True)

    def checkpoint(epoch_rng, partial):
        # "rng" is the generator as it was when the epoch `done + 1` began, so a resumed
        # run draws that epoch's order again and skips the batches it had done.
        save_checkpoint(path, model, optimizer, config, step=optimizer.step_count,
                        extra={"record": record, "rng": epoch_rng, "partial": partial})

    for epoch in range(done + 1, args.epochs + 1):
        epoch_rng = rng.bit_generator.state
        desc = f"{name} epoch {epoch}/{args.epochs}"
        try:
            train_metrics = train_epoch(model, optimizer, train, args, tokenizer.pad_id, rng, stop, desc, meter)
            valid_metrics = evaluate(model, valid, args.batch_size, tokenizer.pad_id, f"{desc} validation")
        except Interrupted as cut:
            record["status"] = "interrupted"
            checkpoint(epoch_rng, vars(cut.meter))
            print(f"{name}: stopped in epoch {epoch} after {cut.meter.batches} batches; checkpoint {path}; "
                  "continue with --resume", file=sys.stderr)
            raise KeyboardInterrupt from None
        except Diverged as err:
            record["status"] = "diverged"
            kept = (f"its last good checkpoint (epoch {done}) is kept in {path}" if done
                    else "it had no checkpoint yet")
            print(f"{name}: {err} in epoch {epoch}; stopped training this model (a lower --lr may help); {kept}",
                  file=sys.stderr)
            return
        meter = Meter()
        done = epoch
        record["epochs"].append({"epoch": epoch, **{f"train_{k}": v for k, v in train_metrics.items()},
                                 **{f"valid_{k}": v for k, v in valid_metrics.items()}})
        # stop.requested here: Ctrl-C came during validation, the epoch is complete
        record["status"] = "finished" if epoch == args.epochs else "interrupted" if stop.requested else "training"
        checkpoint(rng.bit_generator.state, None)
        print(f"{name:<9} epoch {epoch}/{args.epochs}  train loss {train_metrics['loss']:.4f} "
              f"ppl {train_metrics['ppl']:.1f} acc {train_metrics['acc']:.3f} | valid loss {valid_metrics['loss']:.4f} "
              f"ppl {valid_metrics['ppl']:.1f} acc {valid_metrics['acc']:.3f} | "
              f"{format_seconds(train_metrics['seconds'] + valid_metrics['seconds'])}, "
              f"{train_metrics['tokens_per_s']:,.0f} tok/s", flush=True)
        if stop.requested:
            print(f"{name}: stopped after epoch {epoch}; continue with --resume", file=sys.stderr)
            raise KeyboardInterrupt


# ----- reports --------------------------------------------------------------------------

def format_seconds(seconds):
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m {seconds:02d}s" if minutes < 60 else f"{minutes // 60}h {minutes % 60:02d}m"


def model_seconds(record):
    return sum(e["train_seconds"] + e["valid_seconds"] for e in record["epochs"])


def write_results(path, args, records, data_info, started, analysis=None):
    results = {"config": run_config(args), "data": data_info, "paper": PAPER_RESULTS[args.dataset],
               "hardware": runtime.hardware_info(), "wall_seconds_this_invocation": time.perf_counter() - started,
               "models": records}
    if analysis is not None:
        results["representation"] = analysis
    runtime.write_json(path, results)


def print_table(args, records):
    paper = PAPER_RESULTS[args.dataset]
    print(f"\n{DATASET_NAMES[args.dataset]}: validation after the last epoch, beside the paper (PAPER.md)")
    print(f"{'model':<10} {'status':<11} {'params':>10} {'epochs':>6} {'loss':>7} {'ppl':>9} {'acc':>6}"
          f" | {'paper ppl':>9} {'paper acc':>9} | {'time':>8}")
    for name, record in records.items():
        last = record["epochs"][-1] if record["epochs"] else None
        ours = (f"{last['valid_loss']:>7.4f} {last['valid_ppl']:>9.1f} {last['valid_acc']:>6.3f}" if last
                else f"{'-':>7} {'-':>9} {'-':>6}")
        print(f"{name:<10} {record['status']:<11} {record['parameters']:>10,} {len(record['epochs']):>6} {ours}"
              f" | {paper[name][0]:>9} {paper[name][1]:>9.2f} | {format_seconds(model_seconds(record)):>8}")
    changed = [f"--{key.replace('_', '-')} {getattr(args, key)}" for key, value in PAPER.items()
               if key != "models" and getattr(args, key) != value]
    if changed:
        print(f"not the paper's protocol ({', '.join(changed)}): compare the variants with each other, "
              "not with the paper's numbers (perplexity depends on the tokenizer)")


def plot_curves(records, path, title):
    from matplotlib.ticker import MaxNLocator
    plt = runtime.pyplot()

    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for name, record in records.items():
        epochs = [e["epoch"] for e in record["epochs"]]
        (line,) = loss_ax.plot(epochs, [e["valid_loss"] for e in record["epochs"]], marker="o", label=f"{name} valid")
        loss_ax.plot(epochs, [e["train_loss"] for e in record["epochs"]], linestyle="--", color=line.get_color(),
                     label=f"{name} train")
        acc_ax.plot(epochs, [e["valid_acc"] for e in record["epochs"]], marker="o", label=name)
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy (mean of batch losses)", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="next-token accuracy", title="validation accuracy")
    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True)
        ax.legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----- representation analysis and generation -------------------------------------------

def load_trained(path):
    """The model saved in checkpoint `path`, on the current device, and the checkpoint's config."""
    ckpt = read_checkpoint(path)
    model = LanguageModel(**ckpt["config"]["model"])
    model.load_state_dict(ckpt["model"])
    return model, ckpt["config"]


def hidden_states(model, samples, batch_size, pad_id, seed):
    """The states after the embedding and after every block at ANALYSIS_POSITIONS random
    positions of the validation samples (positions whose target is a real token, as the
    reference's analysis takes them): one (N, d) array per layer, the same positions in each."""
    model.eval()
    layers, count = [], 0
    with no_grad():
        for inputs, targets in batches(samples, batch_size, pad_id):
            keep = targets != pad_id
            states = [backend.to_numpy(s.data)[keep] for s in model.hidden_states(backend.to_device(inputs))]
            layers.append(states)
            count += int(keep.sum())
            if count >= 4 * ANALYSIS_POSITIONS:  # a pool wider than one article to draw from
                break
    layers = [np.concatenate(parts) for parts in zip(*layers)]
    chosen = np.random.default_rng(seed).permutation(count)[:ANALYSIS_POSITIONS]
    return [layer[chosen] for layer in layers]


def analyze(args, models, tokenizer, valid, out_dir):
    """The representation figure of the trained models; returns its curves for results.json."""
    states = {}
    for name in models:
        path = out_dir / f"{name}.npz"
        if not path.is_file():
            print(f"--analyze: {name} has no checkpoint, left out")
            continue
        model, _ = load_trained(path)
        states[name] = hidden_states(model, valid, args.batch_size, tokenizer.pad_id, args.seed)
    if not states:
        return None
    figure = out_dir / "representations.png"
    curves = plot_representations(states, figure, f"{DATASET_NAMES[args.dataset]}: hidden states of the "
                                  "validation set after the embedding and each block")
    for name, curve in curves.items():
        print(f"{name:<10} cosine between layers {' '.join(f'{c:.3f}' for c in curve['layer_cosine'])}; "
              f"participation ratio {' '.join(f'{r:.1f}' for r in curve['participation_ratio'])}")
    print(f"representation figure: {figure}")
    return curves


def generate(args, models):
    """Print text sampled from a trained checkpoint after the prompt."""
    path = Path(args.checkpoint or Path(args.out_dir) / f"{models[0]}.npz")
    if not path.is_file():
        raise UserError(f"no checkpoint {path}: train a model first, or point --checkpoint at one")
    tokenizer_path = path.parent / "tokenizer.json"
    if not tokenizer_path.is_file():
        raise UserError(f"{tokenizer_path} is missing: --generate needs the tokenizer that train_lm.py saves "
                        "beside the checkpoints")
    model, config = load_trained(path)
    tokenizer = read_tokenizer(tokenizer_path, config["run"]["tokenizer"])
    try:  # the model checks the prompt's length against its positional table
        out = model.generate(tokenizer.encode(args.generate), args.max_new_tokens, temperature=args.temperature,
                             top_k=args.top_k, rng=np.random.default_rng(args.seed))
    except ValueError as err:
        raise UserError(f"--generate: {err}") from None
    print(tokenizer.decode(out))


# ----- main -----------------------------------------------------------------------------

def main(argv=None):
    started = time.perf_counter()
    args = parse_args(argv)
    models = check_args(args)
    runtime.setup_device(args.device, args.seed)
    if args.generate is not None:
        return generate(args, models)

    out_dir = Path(args.out_dir)
    tokenizer, train, valid = prepare_data(args, out_dir)
    resume_states = {name: read_resume_state(name, out_dir / f"{name}.npz", args) if args.resume else None
                     for name in models}
    # Every check has passed: from here on --out-dir is written.
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create --out-dir {out_dir}: {err}") from None
    if not args.resume:
        save_tokenizer(tokenizer, out_dir / "tokenizer.json")
    data_info = {"tokenizer": tokenizer.name, "vocab_size": tokenizer.vocab_size, "pad_id": tokenizer.pad_id,
                 "train_samples": len(train), "valid_samples": len(valid), "train_tokens": count_tokens(train),
                 "valid_tokens": count_tokens(valid)}
    records = {name: {"status": "pending", "parameters": None, "epochs": [], "checkpoint": None} for name in models}
    results_path = out_dir / "results.json"

    with StopRequest() as stop:
        for name in models:
            try:
                train_model(name, args, records[name], resume_states[name], (tokenizer, train, valid), out_dir, stop)
            finally:  # after every model, and on Ctrl-C with what was done so far
                write_results(results_path, args, records, data_info, started)

    title = (f"{DATASET_NAMES[args.dataset]}: {tokenizer.name} tokenizer, d {args.d_model}, layers {args.layers}, "
             f"heads {args.heads}, {len(train):,} training samples")
    print_table(args, records)
    plot_curves(records, out_dir / "loss_curves.png", title)
    analysis = analyze(args, models, tokenizer, valid, out_dir) if args.analyze else None
    write_results(results_path, args, records, data_info, started, analysis)
    print(f"results: {results_path}, {out_dir / 'loss_curves.png'}; wall time "
          f"{format_seconds(time.perf_counter() - started)}")


if __name__ == "__main__":
    runtime.run_main(main)
