"""Time one full training step (forward, cross-entropy, backward, AdamW) of the three
language-model variants, against PyTorch in the same run when it is installed, and measure
the peak resident memory of a step.

    python -m bench.train_step                  # paper size, V 8,192, 5 timed steps each
    python -m bench.train_step --vocab 50257 --repeats 3      # the paper's vocabulary
    python -m bench.train_step --repeats 9 --models summation

Prints the median step time, tokens/s, the achieved GFLOP/s and the machine's float32
matmul rate measured in the same run (the ceiling no NumPy program can pass). minisum's step
is `lm_train_step` (the fused output layer and loss), PyTorch's is the usual
`F.cross_entropy(model(inputs))`. Peak memory: each library and model runs in a fresh
process that builds the model and takes two steps (the first creates the optimizer state);
its peak resident memory (VmHWM) is the whole process's: interpreter, library, model,
optimizer state and the step's own arrays.

FLOPs counted (matrix products only, the work that dominates; a multiply-add is 2 FLOPs):
    forward  = 2 * N * tokens + attention layers * 4 * B * T^2 * d
    step     = 3 * forward            (backward = 2 matmuls per forward matmul)
N = parameters used in matrix products per token: 5 d^2 per summation block (W1, W2,
out_proj, two feed-forward), 6 d^2 per attention block (q, k, v, out_proj, two
feed-forward), d * V for the output layer; embeddings are lookups and cost none.
4 B T^2 d is Q K^T plus P V over all heads, counted in full (the causal half is computed
too, by minisum and by the reference code alike).
"""
import argparse
import json

import numpy as np

from bench.common import (RESULTS, machine_line, matmul_ceiling, median, peak_rss_mb, print_point, run_point,
                          spread, table, time_calls)
from minisum.backend import seed
from minisum.models import MIXERS, LanguageModel
from minisum.optim import AdamW
from minisum.training import lm_train_step


def step_flops(d, vocab, n_layers, batch, context, mixer):
    """Matmul FLOPs of one training step (see the module docstring)."""
    kinds = {"attention": ["attention"] * n_layers, "summation": ["summation"] * n_layers,
             "hybrid": ["summation"] * (n_layers - 1) + ["attention"]}[mixer]
    matmul_params = sum(6 * d * d if kind == "attention" else 5 * d * d for kind in kinds) + d * vocab
    tokens = batch * context
    scores = kinds.count("attention") * 4 * batch * context ** 2 * d
    return 3 * (2 * matmul_params * tokens + scores)


def minisum_step_fn(config, mixer, ids):
    seed(0)
    model = LanguageModel(mixer=mixer, **config)
    optimizer = AdamW(model.parameters(), lr=1e-4)
    inputs, targets = ids[:, :-1], ids[:, 1:]

    def step():
        lm_train_step(model, optimizer, inputs, targets, pad_id=None)
    return step


def torch_step_fn(config, mixer, ids, threads):
    """PyTorch's step, or None when PyTorch is not installed."""
    try:
        from bench.torch_reference import train_step_fn
    except ImportError:
        return None
    return train_step_fn(config, mixer, ids, threads)


def memory_point(library, config, mixer, ids, threads):
    """In this (fresh) process: two steps of one library's model, then the process's peak MB."""
    step = minisum_step_fn(config, mixer, ids) if library == "minisum" else torch_step_fn(config, mixer, ids, threads)
    step()
    step()
    print_point(dict(peak_mb=peak_rss_mb()))


def peak_memory(library, args, mixer):
    """Peak resident MB of `library`'s step, measured in a fresh process; None if it failed."""
    point = run_point("bench.train_step", [*argv_of(args), "--models", mixer, "--memory-of", library], timeout=600)
    return point and point["peak_mb"]


def argv_of(args):
    return ["--vocab", args.vocab, "--d-model", args.d_model, "--layers", args.layers, "--heads", args.heads,
            "--batch", args.batch, "--context", args.context, "--threads", args.threads]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=MIXERS, default=list(MIXERS))
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--d-model", type=int, default=512)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per model and library")
    parser.add_argument("--threads", type=int, default=2,
                        help="PyTorch threads; NumPy's BLAS reads OPENBLAS_NUM_THREADS (default: all cores)")
    parser.add_argument("--no-torch", action="store_true", help="time minisum only")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    parser.add_argument("--memory-of", choices=["minisum", "torch"], help=argparse.SUPPRESS)  # a child's job
    args = parser.parse_args()

    config = dict(vocab_size=args.vocab, d_model=args.d_model, n_layers=args.layers, n_heads=args.heads,
                  max_len=args.context)
    ids = np.random.default_rng(0).integers(0, args.vocab, (args.batch, args.context + 1))
    tokens = args.batch * args.context
    if args.memory_of:
        return memory_point(args.memory_of, config, args.models[0], ids, args.threads)
    print(machine_line())
    ceiling = matmul_ceiling()

    records = []
    for mixer in args.models:
        ours = minisum_step_fn(config, mixer, ids)
        theirs = None if args.no_torch else torch_step_fn(config, mixer, ids, args.threads)
        ours()  # warm-up: first-call allocations, optimizer state
        if theirs:
            theirs()
        # Alternate the two libraries step by step so that both see the same machine load.
        ours_t, theirs_t = [], []
        for _ in range(args.repeats):
            ours_t += time_calls(ours, 1, warmup=0)
            if theirs:
                theirs_t += time_calls(theirs, 1, warmup=0)
        t = median(ours_t)
        flops = step_flops(args.d_model, args.vocab, args.layers, args.batch, args.context, mixer)
        record = dict(model=mixer, minisum_ms=1e3 * t, tokens_per_s=tokens / t, gflops=flops / t / 1e9,
                      noise=spread(ours_t))
        if theirs:
            record.update(torch_ms=1e3 * median(theirs_t), ratio=t / median(theirs_t))
        del ours, theirs  # their models and optimizer states: the memory processes below need the room
        if not args.no_memory:
            record.update(minisum_peak_mb=peak_memory("minisum", args, mixer))
            if "torch_ms" in record:
                record.update(torch_peak_mb=peak_memory("torch", args, mixer))
        records.append(record)
        print(f"  {mixer}: minisum {[round(1e3 * x) for x in ours_t]} ms"
              + (f", PyTorch {[round(1e3 * x) for x in theirs_t]} ms" if "torch_ms" in record else ""), flush=True)
    if not args.no_torch and "torch_ms" not in records[0]:
        print("  PyTorch is not installed: minisum only")

    # The ceiling again after the models: the machine is shared, keep the better of the two.
    ceiling = max(ceiling, matmul_ceiling())
    with_torch, with_memory = "torch_ms" in records[0], not args.no_memory
    headers = ["model", "minisum ms/step", "tokens/s", "GFLOP/s", "of ceiling"]
    headers += ["PyTorch ms/step", "minisum/PyTorch"] if with_torch else []
    headers += ["minisum peak MB"] + (["PyTorch peak MB"] if with_torch else []) if with_memory else []
    rows = []
    for r in records:
        row = [r["model"], f"{r['minisum_ms']:,.0f}", f"{r['tokens_per_s']:,.0f}", f"{r['gflops']:.0f}",
               f"{100 * r['gflops'] / ceiling:.0f}%"]
        row += [f"{r['torch_ms']:,.0f}", f"{r['ratio']:.2f}"] if with_torch else []
        if with_memory:
            row += [_mb(r["minisum_peak_mb"])] + ([_mb(r.get("torch_peak_mb"))] if with_torch else [])
        rows.append(row + [f"{r['noise']:.2f}"])
    print(f"\nd {args.d_model}, {args.layers} layers, {args.heads} heads, batch {args.batch}, context {args.context}, "
          f"V {args.vocab:,}; median of {args.repeats} steps; float32 matmul ceiling {ceiling:.0f} GFLOP/s")
    print(table(headers + ["max/min"], rows))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "train_step.json").write_text(
        json.dumps(dict(config=config, batch=args.batch, ceiling_gflops=ceiling, results=records), indent=1))


def _mb(value):
    return "failed" if value is None else f"{value:,.0f}"


if __name__ == "__main__":
    main()
