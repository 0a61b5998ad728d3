"""The paper's language-modeling benchmark (docs/paper.md, section 1): attention, summation, hybrid.

    python train_lm.py --quick                          a small preset, minutes on a laptop CPU
    python train_lm.py --device gpu                     the paper's protocol
    python train_lm.py --resume                         continue the run in --out-dir, with its own flags
    python train_lm.py --resume --analyze               the representation figure of a finished run
    python train_lm.py --generate "The game"            sample text from the run's first model

Every choice of the paper is a flag whose default is the paper's value (shown after the
flag in the usage); --quick changes some of them, and flags given explicitly win over the
preset. Without --data-dir the data comes from the Hugging Face hub (offline, point
--data-dir at a local copy, e.g. ../shared/data/wikitext-2).

The variants are trained one after the other, from the same seed, on the same samples in
the same order. The run owns its --out-dir (another run's folder is refused unless --resume
or --overwrite) and writes there:
    run.json             the run's flags, so that --resume alone continues it
    results.json         config, data sizes, per-epoch metrics, timing, hardware
    loss_curves.png      train and validation loss, validation accuracy per epoch
    <model>.npz          the latest checkpoint of each model, rewritten after every epoch
    tokenizer.json       the tokenizer, so --resume and --generate see the same ids
    representations.png  with --analyze
Ctrl-C or SIGTERM saves a checkpoint at the end of the current batch (exit 130 or 143);
--resume picks it up there. A model whose loss diverges stops alone (exit 3 at the end).

    mpiexec -n 2 python train_lm.py --quick             data-parallel: one process per core (docs/distributed.md)

Under mpiexec each rank trains on its share of the rows of every batch (--batch-size is the
whole batch) and the gradients are summed: the same training as one process. Rank 0 alone
prints and writes; a run may resume with another number of ranks.
"""
import argparse
import itertools
import math
import time
from pathlib import Path

import numpy as np

from minisum import backend, distributed
from minisum.autograd import no_grad
from minisum.checkpoint import check_fingerprint, fields_of, read_checkpoint
from minisum.distributed import DistributedOptimizer
from minisum.data.gpt2_tokenizer import load_tokenizer, read_tokenizer, vocabulary_size
from minisum.data.lm_samples import batches, count_tokens, make_samples
from minisum.data.lm_sources import LM_DATASETS, load_lm_texts
from minisum.errors import UserError
from minisum.models import MIXERS, LanguageModel
from minisum.ops.linear_cross_entropy import CHUNK_ELEMENTS, VOCAB_SLICE
from minisum.optim import AdamW
from minisum.representation import plot_representations
from minisum.run import arguments, memory, runtime
from minisum.run.arguments import NON_NEGATIVE, SEED, at_least, names, positive
from minisum.run.folder import RunFolder, read_flags, resumed
from minisum.run.meter import Diverged, Meter, check_parameters, run_diverged, stopped_diverged, untrained_limit
from minisum.run.progress import Progress, begin, read_progress
from minisum.run.run import Run
from minisum.training import lm_train_step

# The paper's protocol; each one is a flag of the same name.
PAPER = dict(dataset="wikitext2", models=list(MIXERS), tokenizer="gpt2", train_samples=5000, valid_samples=1000,
             context=256, batch_size=8, lr=1e-4, epochs=10, d_model=512, layers=4, heads=8, weight_decay=0.0,
             seed=0)  # the reference sets no seed; 0 is ours
# --quick: the three variants in under 10 minutes on 2 CPU cores, tokenizer training included.
# A 4,096-token BPE shrinks the output layer 12x; the higher rate makes 3 short epochs visibly learn.
QUICK = dict(tokenizer="bpe:4096", train_samples=2000, valid_samples=200, context=64, batch_size=16, lr=1e-3,
             epochs=3, d_model=128, layers=2, heads=4)
# Flags that must not change between a run and its --resume (the epochs may grow, the models vary).
RESUME_KEYS = ("dataset", "tokenizer", "train_samples", "valid_samples", "context", "batch_size", "lr",
               "d_model", "layers", "heads", "weight_decay", "seed")
MAY_CHANGE_ON_RESUME = ("epochs", "models", "quick", "data_dir", "tokenizer_dir")
RUN_FILES = ("results.json", "tokenizer.json", "loss_curves.png", "representations.png", "*.npz")
LOG_EVERY = 50  # batches between reads of the running loss (each read waits for the GPU)

# Validation perplexity and accuracy after the last epoch (docs/paper.md, section 1).
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
    p = arguments.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    # The metavar of each flag of the protocol shows its default, the paper's value.
    p.add_argument("--dataset", metavar=PAPER["dataset"], help=f"one of {', '.join(LM_DATASETS)}")
    p.add_argument("--models", type=names(MIXERS), metavar=",".join(MIXERS), help="comma-separated")
    p.add_argument("--tokenizer", metavar=PAPER["tokenizer"], help="gpt2, or bpe:N (a byte-level BPE of N "
                   "tokens trained on the training split)")
    p.add_argument("--train-samples", type=positive(int), metavar=str(PAPER["train_samples"]),
                   help="the first N training samples")
    p.add_argument("--valid-samples", type=positive(int), metavar=str(PAPER["valid_samples"]),
                   help="the first N validation samples")
    p.add_argument("--context", type=at_least(2), metavar=str(PAPER["context"]), help="tokens per sample (longer "
                   "ones are cut) and size of the positional table; at least 2 (one input and one target token)")
    p.add_argument("--batch-size", type=positive(int), metavar=str(PAPER["batch_size"]))
    p.add_argument("--lr", type=positive(float), metavar=str(PAPER["lr"]), help="Adam's learning rate")
    p.add_argument("--epochs", type=positive(int), metavar=str(PAPER["epochs"]))
    p.add_argument("--d-model", type=positive(int), metavar=str(PAPER["d_model"]))
    p.add_argument("--layers", type=positive(int), metavar=str(PAPER["layers"]))
    p.add_argument("--heads", type=positive(int), metavar=str(PAPER["heads"]))
    p.add_argument("--weight-decay", type=NON_NEGATIVE, metavar=str(PAPER["weight_decay"]))
    p.add_argument("--seed", type=SEED, metavar=str(PAPER["seed"]), help="model initialisation and batch order")
    p.add_argument("--quick", action="store_true",
                   help="small preset: " + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items()))
    p.add_argument("--data-dir", help="local copy of the dataset in its release format (default: the HF hub)")
    p.add_argument("--tokenizer-dir", help="folder with GPT-2's vocab.json and merges.txt (default: the HF hub)")
    arguments.add_run_flags(p, "runs/lm")
    p.add_argument("--analyze", action="store_true", help="after training, draw the representation figure")
    p.add_argument("--generate", metavar="PROMPT", help="print text sampled from a trained model, then exit")
    p.add_argument("--checkpoint", help="the checkpoint for --generate (default: --out-dir/<first model>.npz)")
    p.add_argument("--max-new-tokens", type=positive(int), default=60, help="for --generate (default: %(default)s)")
    p.add_argument("--temperature", type=NON_NEGATIVE, default=0.8,
                   help="for --generate; 0 is greedy (default: %(default)s)")
    p.add_argument("--top-k", type=positive(int), default=40, help="for --generate (default: %(default)s)")
    args = p.parse_args(argv)
    if args.resume and args.generate is None:
        args = resumed(p, argv, args, Path(args.out_dir), MAY_CHANGE_ON_RESUME)
    for key, value in PAPER.items():
        if getattr(args, key) is None:
            setattr(args, key, QUICK.get(key, value) if args.quick else value)
    return args


def settle_args(run):
    """Every check that needs no data, the device, the memory a step needs and the run folder.
    Nothing is read or written yet."""
    args, folder = run.args, run.folder
    if args.generate is not None and "models" not in args.explicit and (folder.path / "run.json").is_file():
        args.models = read_flags(folder.path).get("models", args.models)  # --generate samples the run's first model
    if args.dataset not in LM_DATASETS:
        raise UserError(f"unknown dataset {args.dataset!r}; choose one of {', '.join(LM_DATASETS)}")
    if args.d_model % args.heads:
        raise UserError(f"--d-model {args.d_model} is not divisible by --heads {args.heads}")
    vocab = vocabulary_size(args.tokenizer)
    runtime.setup_device(arguments.device(args), args.seed)
    if args.generate is None:
        parameters, activations = max((step_memory(args, vocab, name) for name in args.models),
                                      key=lambda estimate: memory.step_bytes(*estimate))
        memory.check_fits(parameters, activations, "lower --batch-size, --context or --d-model, or use a smaller "
                          "--tokenizer")
        run.claim()


def block_kinds(mixer, layers):
    """The mixer of each block: a hybrid's last block is attention."""
    return ["summation"] * (layers - 1) + ["attention"] if mixer == "hybrid" else [mixer] * layers


def lm_parameters(vocab, d, layers, context, mixer):
    """LanguageModel's parameter count, without building it: token and positional tables, the
    blocks (a summation block 5 d x d matrices, an attention block 6, with their biases and two
    layer norms), the final layer norm and the output layer."""
    per_block = {"summation": 5 * d * d + 7 * d, "attention": 6 * d * d + 10 * d}
    blocks = sum(per_block[kind] for kind in block_kinds(mixer, layers))
    return vocab * d + context * d + blocks + 2 * d + vocab * (d + 1)


def step_memory(args, vocab, mixer):
    """(parameters, activations) of one training step of `mixer`, for memory.check_fits: each
    block keeps about 12 arrays of (B, T - 1, d) for backward; the fused output layer holds one
    chunk of logits and a slice of its weight's gradient, never the (B, T - 1, V) logits; each
    attention block keeps its softmax, and backward one more of that size at a time."""
    rows, d = args.batch_size * (args.context - 1), args.d_model
    kinds = block_kinds(mixer, args.layers)
    activations = {"blocks' activations": (12 * args.layers, (args.batch_size, args.context - 1, d)),
                   "output layer's chunk of logits": (1, (min(rows, max(CHUNK_ELEMENTS // vocab, 1)), vocab)),
                   "output layer's gradient slice": (1, (min(vocab, VOCAB_SLICE), d))}
    if "attention" in kinds:
        activations["attention scores"] = (kinds.count("attention") + 1,
                                           (args.batch_size, args.heads, args.context - 1, args.context - 1))
    return lm_parameters(vocab, d, args.layers, args.context, mixer), activations


def run_config(args):
    """What results.json and the checkpoints record about the run."""
    keys = list(PAPER) + ["quick", "data_dir", "tokenizer_dir"]
    return {key: getattr(args, key) for key in keys}


# ----- data -----------------------------------------------------------------------------

def prepare_data(args, folder):
    """The tokenizer (the run's own on --resume) and the train and validation samples."""
    texts = load_lm_texts(args.dataset, args.data_dir)
    saved = folder.path / "tokenizer.json"
    if args.resume and saved.is_file():
        tokenizer = read_tokenizer(saved, args.tokenizer)
    elif args.resume:
        raise UserError(f"cannot resume the run in {folder.path}: its tokenizer.json is missing")
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


# ----- training -------------------------------------------------------------------------

def build_model(name, args, vocab_size):
    backend.seed(args.seed)  # every variant starts from the same draws (identical embeddings)
    return LanguageModel(vocab_size, args.d_model, args.layers, args.heads, max_len=args.context, mixer=name)


def checkpoint_config(name, args, tokenizer):
    model = dict(vocab_size=tokenizer.vocab_size, d_model=args.d_model, n_layers=args.layers, n_heads=args.heads,
                 max_len=args.context, mixer=name)
    return {"model": model, "run": run_config(args), "fingerprint": tokenizer.fingerprint(),
            "fingerprint_of": "tokenizer"}


def train_model(name, run, data, progress):
    """Train one variant up to --epochs from `progress` (its checkpoint's, or a fresh one),
    filling progress.record, its part of results.json, as it goes."""
    args, (tokenizer, train, valid), world = run.args, data, run.world
    path, pad = run.path / f"{name}.npz", tokenizer.pad_id
    model = build_model(name, args, tokenizer.vocab_size)
    optimizer = AdamW(model.parameters(), lr=args.lr, eps=1e-8, weight_decay=args.weight_decay)
    stepper = DistributedOptimizer(optimizer, world)  # sums the ranks' gradients before each step
    rng = np.random.default_rng(args.seed)  # the batch order; the same for every variant
    config, record = checkpoint_config(name, args, tokenizer), progress.record
    limit = untrained_limit(tokenizer.vocab_size)  # 10 x ln(V): far above where any model starts
    if not begin(name, path, model, optimizer, rng, progress, args.epochs):
        return
    world.broadcast_parameters(model.parameters())
    record.update(parameters=int(model.num_parameters()), checkpoint=str(path), status="training")
    print(f"{name}: {record['parameters']:,} parameters" + (f", resuming epoch {progress.done + 1} after batch "
          f"{progress.meter().batches}" if progress.from_checkpoint else ""), flush=True)

    for epoch in range(progress.done + 1, args.epochs + 1):
        progress.epoch_rng, meter = rng.bit_generator.state, progress.meter(world)
        batches = EpochBatches(train, args.batch_size, pad, rng, meter.batches, f"{name} epoch {epoch}/{args.epochs}")
        model.train()
        with runtime.Timer() as timer:
            for inputs, targets in batches:
                loss, hits, share = train_share(model, stepper, world, inputs, targets, pad)  # ... all-reduce, step
                meter.add(loss, hits=hits, count=int((targets != pad).sum()), share=share)
                if meter.batches % LOG_EVERY == 0:  # the one read of the device's sums, and the divergence check
                    batches.show(meter.read(limit), meter.seconds + timer.elapsed())
                if run.stopping():
                    break
        signum, finished = run.stopping(), meter.batches == len(batches)  # read once: the state saved is this
        meter.seconds += timer.seconds
        train_metrics = metrics(meter.read(limit))
        if finished:
            valid_metrics = evaluate(model, valid, args.batch_size, pad, limit, f"{batches.desc} validation", world)
            record["epochs"].append({"epoch": epoch, **{f"train_{k}": v for k, v in train_metrics.items()},
                                     **{f"valid_{k}": v for k, v in valid_metrics.items()}})
            progress.epoch_rng, progress.partial = rng.bit_generator.state, None
            print_epoch(name, epoch, args.epochs, train_metrics, valid_metrics)
        else:  # stopped mid-epoch: the checkpoint keeps the epoch's progress
            progress.partial = meter.state()
        record["status"] = "finished" if finished and epoch == args.epochs else "interrupted" if signum else "training"
        check_parameters(model.parameters())
        run.checkpoint(path, model, optimizer, config, progress)
        if signum:
            raise run.stopped_at(name, epoch, None if finished else meter.batches, path)
    record["status"] = "finished"


def train_share(model, optimizer, world, inputs, targets, pad):
    """One training step on this rank's rows of the batch (all of them with one rank):
    lm_train_step, whose optimizer sums the ranks' gradients, each weighted by its rank's share
    of the batch's real targets, so that their sum is the gradient of the whole batch's mean
    loss (every rank computes the shares from the whole batch, without communicating).
    Returns the loss, the hits and that share."""
    mine = world.rows(len(inputs))
    share = int((targets[mine] != pad).sum()) / int((targets != pad).sum())
    optimizer.share = share
    if world.size > 1:  # the embedding's gradient is zero off the batch's tokens: the rest is not sent
        optimizer.touched = {id(model.token_embedding.weight): backend.to_device(np.unique(inputs))}
    if mine.start == mine.stop:  # a last batch smaller than the world: this rank only joins the sum
        optimizer.zero_grad()
        optimizer.step()
        return 0.0, None, share
    loss, hits = lm_train_step(model, optimizer, *runtime.to_device_batch(inputs[mine], targets[mine]), pad)
    return loss.data, hits, share


class EpochBatches:
    """One shuffled pass over `samples` in batches, skipping the first `skip` (done before an
    interruption), behind a progress bar; len() is the number of batches of the whole pass."""

    def __init__(self, samples, batch_size, pad_id, rng, skip, desc):
        self.total, self.desc = math.ceil(len(samples) / batch_size), desc
        pending = itertools.islice(batches(samples, batch_size, pad_id, shuffle=True, rng=rng), skip, None)
        self.bar = runtime.progress(pending, total=self.total - skip, desc=desc)

    def __iter__(self):
        return iter(self.bar)

    def __len__(self):
        return self.total

    def show(self, meter, seconds):
        if hasattr(self.bar, "set_postfix_str"):  # a plain iterator when tqdm is missing
            self.bar.set_postfix_str(f"loss {meter.loss:.3f}, {meter.count / max(seconds, 1e-9):,.0f} tok/s",
                                     refresh=False)


def metrics(meter):
    """The paper's: the mean of the batch losses, its perplexity, argmax accuracy over the real targets."""
    loss = meter.loss
    return {"loss": loss, "ppl": math.exp(loss) if loss < 700 else math.inf, "acc": meter.accuracy,
            "seconds": meter.seconds, "tokens_per_s": meter.count / max(meter.seconds, 1e-9)}


def evaluate(model, samples, batch_size, pad_id, limit, desc, world):
    """Validation metrics, without gradients, in eval mode; each rank on its share of every batch."""
    model.eval()
    meter = Meter(world=world)
    total = math.ceil(len(samples) / batch_size)
    with no_grad(), runtime.Timer() as timer:
        for inputs, targets in runtime.progress(batches(samples, batch_size, pad_id), total=total, desc=desc):
            count, mine = int((targets != pad_id).sum()), world.rows(len(inputs))
            inputs, targets = inputs[mine], targets[mine]
            if len(inputs):
                loss, hits = model.loss(*runtime.to_device_batch(inputs, targets), pad_id)
                meter.add(loss.data, hits=hits, count=count, share=int((targets != pad_id).sum()) / count)
            else:
                meter.add(0.0, count=count)
    meter.seconds = timer.seconds
    return metrics(meter.read(limit))


def print_epoch(name, epoch, epochs, train, valid):
    print(f"{name:<9} epoch {epoch}/{epochs}  train loss {train['loss']:.4f} ppl {train['ppl']:.1f} "
          f"acc {train['acc']:.3f} | valid loss {valid['loss']:.4f} ppl {valid['ppl']:.1f} acc {valid['acc']:.3f} | "
          f"{format_seconds(train['seconds'] + valid['seconds'])}, {train['tokens_per_s']:,.0f} tok/s", flush=True)


# ----- reports --------------------------------------------------------------------------

def format_seconds(seconds):
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m {seconds:02d}s" if minutes < 60 else f"{minutes // 60}h {minutes % 60:02d}m"


def model_seconds(record):
    return sum(e["train_seconds"] + e["valid_seconds"] for e in record["epochs"])


def results(run, records, data_info, started, analysis=None):
    """What results.json holds."""
    report = {"config": run_config(run.args), "ranks": run.world.size, "data": data_info,
              "paper": PAPER_RESULTS[run.args.dataset], "hardware": runtime.hardware_info(),
              "wall_seconds_this_invocation": time.perf_counter() - started, "models": records}
    if analysis is not None:
        report["representation"] = analysis
    return report


def print_table(args, records):
    paper = PAPER_RESULTS[args.dataset]
    print(f"\n{DATASET_NAMES[args.dataset]}: validation after the last epoch, beside the paper (docs/paper.md)")
    print(f"{'model':<10} {'status':<11} {'params':>10} {'epochs':>6} {'loss':>7} {'ppl':>9} {'acc':>6}"
          f" | {'paper ppl':>9} {'paper acc':>9} | {'time':>8}")
    for name, record in records.items():
        last = record["epochs"][-1] if record["epochs"] and record["status"] != "diverged" else None
        ours = (f"{last['valid_loss']:>7.4f} {last['valid_ppl']:>9.1f} {last['valid_acc']:>6.3f}" if last
                else f"{'-':>7} {'-':>9} {'-':>6}")
        params = f"{record['parameters']:,}" if record["parameters"] else "-"  # "-": a model not started yet
        print(f"{name:<10} {record['status']:<11} {params:>10} {len(record['epochs']):>6} {ours}"
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

def load_trained(path, tokenizer):
    """The model saved in checkpoint `path`, on the current device, after checking that it was
    trained with `tokenizer`."""
    ckpt = read_checkpoint(path)
    check_fingerprint(ckpt, path, tokenizer.fingerprint(), "tokenizer")
    with fields_of(path):
        config = ckpt["config"]["model"]
        if not all(isinstance(config[key], int) for key in ("vocab_size", "d_model", "n_layers", "n_heads", "max_len")):
            raise ValueError(f"its model sizes {config} are not all whole numbers")
        model = LanguageModel(**config)
        model.load_state_dict(ckpt["model"])
    return model


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


def analyze(args, records, tokenizer, valid, out_dir):
    """The representation figure of the trained models; returns its curves for results.json."""
    states = {}
    for name in args.models:
        path = out_dir / f"{name}.npz"
        if not path.is_file() or records[name]["status"] == "diverged":
            print(f"--analyze: {name} has {'diverged' if path.is_file() else 'no checkpoint'}, left out")
            continue
        states[name] = hidden_states(load_trained(path, tokenizer), valid, args.batch_size, tokenizer.pad_id, args.seed)
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


def generate(args):
    """Print text sampled from a trained checkpoint after the prompt."""
    path = Path(args.checkpoint or Path(args.out_dir) / f"{args.models[0]}.npz")
    if not path.is_file():
        raise UserError(f"no checkpoint {path}: train a model first, or point --checkpoint at one")
    tokenizer_path = path.parent / "tokenizer.json"
    if not tokenizer_path.is_file():
        raise UserError(f"{tokenizer_path} is missing: --generate needs the tokenizer that train_lm.py saves "
                        "beside the checkpoints")
    with fields_of(path):
        name = str(read_checkpoint(path)["config"]["run"]["tokenizer"])
    tokenizer = read_tokenizer(tokenizer_path, name)
    model = load_trained(path, tokenizer)
    try:  # the model checks the prompt's length against its positional table
        out = model.generate(tokenizer.encode(args.generate), args.max_new_tokens, temperature=args.temperature,
                             top_k=args.top_k, rng=np.random.default_rng(args.seed))
    except ValueError as err:
        raise UserError(f"--generate: {err}") from None
    print(tokenizer.decode(out))


# ----- main -----------------------------------------------------------------------------

def main(argv=None):
    started = time.perf_counter()
    world = distributed.world()  # one rank without mpiexec
    distributed.quiet_other_ranks(world)
    args = parse_args(argv)
    run = Run(args, RunFolder(args.out_dir, RUN_FILES), world)
    settle_args(run)
    if args.generate is not None:
        return generate(args)

    tokenizer, train, valid = prepare_data(args, run.folder)
    world.check_same(f"{tokenizer.fingerprint()} {len(train)} {len(valid)}", "the tokenizer and the samples")
    records = run.folder.earlier_records(args)
    progress = {}  # every checkpoint is checked before the first batch
    for name in args.models:
        path = run.path / f"{name}.npz"
        saved = read_progress(path, checkpoint_config(name, args, tokenizer), RESUME_KEYS) if args.resume else None
        if args.resume and saved is None:
            print(f"{name}: no checkpoint in {run.path}, starting from epoch 1")
        progress[name] = saved or Progress(record={"status": "pending", "parameters": None, "epochs": [],
                                                   "checkpoint": None}, epoch_rng=None)
        records[name] = progress[name].record
    run.open(progress)  # every check has passed on every rank: from here on rank 0 writes --out-dir
    if run.is_main and not args.resume:
        tokenizer.save(run.path / "tokenizer.json")
    data_info = {"tokenizer": tokenizer.name, "vocab_size": tokenizer.vocab_size, "pad_id": tokenizer.pad_id,
                 "train_samples": len(train), "valid_samples": len(valid), "train_tokens": count_tokens(train),
                 "valid_tokens": count_tokens(valid)}
    results_path = run.path / "results.json"

    diverged = []
    with run:  # Ctrl-C and SIGTERM stop at the next batch boundary
        for name in args.models:
            if run.stopping():  # came while a model diverged
                raise run.stopped()
            try:
                train_model(name, run, (tokenizer, train, valid), progress[name])
            except Diverged as err:
                records[name]["status"] = "diverged"
                diverged.append(name)
                print(stopped_diverged(name, err, len(records[name]["epochs"])), flush=True)
            finally:  # after every model, and on a signal with what was done so far
                run.write_json(results_path, results(run, records, data_info, started))
    if not run.is_main:  # rank 0 reports
        if diverged:
            raise run_diverged(diverged, results_path)
        return

    title = (f"{DATASET_NAMES[args.dataset]}: {tokenizer.name} tokenizer, d {args.d_model}, layers {args.layers}, "
             f"heads {args.heads}, {len(train):,} training samples")
    print_table(args, records)
    plot_curves(records, run.path / "loss_curves.png", title)
    analysis = analyze(args, records, tokenizer, valid, run.path) if args.analyze else None
    run.write_json(results_path, results(run, records, data_info, started, analysis))
    print(f"results: {results_path}, {run.path / 'loss_curves.png'}; wall time "
          f"{format_seconds(time.perf_counter() - started)}")
    if diverged:
        raise run_diverged(diverged, results_path)


if __name__ == "__main__":
    runtime.run_main(main)
