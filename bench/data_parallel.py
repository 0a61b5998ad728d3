"""Data-parallel training against threads: one paper-size language-model training step as

    1 rank x 1 thread          one process, one BLAS thread, the whole batch
    1 process x all threads    one process, BLAS on every core (minisum's default)
    N ranks x 1 thread         mpiexec -n N, each rank its share of the batch's rows, one thread,
                               the gradients summed (minisum/distributed.py), N = 2 ... cores
    PyTorch x all threads      bench/torch_reference.py's step, when PyTorch is installed

    python -m bench.data_parallel --vocab 50257          # the paper's vocabulary
    python -m bench.data_parallel --model attention --repeats 5

Every setup runs in a fresh process (the threads are fixed when NumPy loads) in the same run,
one after the other. Prints a markdown table: median ms per step, the speed-up over one rank,
the ratio to PyTorch's step time, the all-reduce's ms within the step (timed after a barrier,
so waiting for a slower rank is not counted in it) and the share of the matmul ceiling (the
float32 matmul rate of the same setup: one thread, all threads, or N single-threaded ranks at
once, summed). Then a model, not a measurement, of 8, 16 and 64 ranks: the measured compute of
a rank (fixed rows per rank, so the global batch grows with N) plus a ring all-reduce at the
bandwidth the 2-rank all-reduce reached (2 (N - 1) / N of the gradient's bytes per rank).
Needs mpi4py and mpiexec for the N-rank rows (pip install ".[mpi]").
"""
import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

from bench.common import REPO, machine_line, matmul_ceiling, median, print_point, table
from bench.train_step import step_flops, torch_step_fn
from minisum import backend, distributed
from minisum.distributed import DistributedOptimizer
from minisum.models import MIXERS, LanguageModel
from minisum.optim import AdamW
from minisum.training import lm_train_step

MODELLED_RANKS = (8, 16, 64)


# ----- one point, in its own process (or its own mpiexec) ----------------------------------

def point(args):
    """Time args.repeats steps of this process's setup; rank 0 prints one JSON line."""
    world = distributed.world()
    config = dict(vocab_size=args.vocab, d_model=args.d_model, n_layers=args.layers, n_heads=args.heads,
                  max_len=args.context)
    ids = np.random.default_rng(0).integers(0, args.vocab, (args.batch, args.context + 1))
    world.barrier()
    ceiling = world.host_sum(np.array([matmul_ceiling()]))[0]  # the ranks' matmuls at the same time
    if args.point == "torch":
        step, reduce_times = torch_step_fn(config, args.model, ids, os.cpu_count()), []
    else:
        step, reduce_times = minisum_step(config, args.model, ids, world)
    step()  # warm-up: first-call allocations, optimizer state
    times, reduces = [], []
    for _ in range(args.repeats):
        reduce_times.clear()
        world.barrier()
        start = time.perf_counter()
        step()
        world.barrier()
        times.append(time.perf_counter() - start)
        reduces.append(sum(reduce_times))
    if world.is_main:
        print_point(dict(ms=1e3 * median(times), times=[round(1e3 * t) for t in times], ceiling=float(ceiling),
                         allreduce_ms=1e3 * median(reduces), ranks=world.size))


def minisum_step(config, mixer, ids, world):
    """minisum's step on this rank's rows, with the gradients' sum timed after a barrier."""
    backend.seed(0)
    model = LanguageModel(mixer=mixer, **config)
    optimizer = DistributedOptimizer(AdamW(model.parameters(), lr=1e-4), world)
    mine = world.rows(len(ids))
    inputs, targets = ids[mine, :-1], ids[mine, 1:]
    optimizer.share = len(inputs) / len(ids)
    optimizer.touched = {id(model.token_embedding.weight): np.unique(ids[:, :-1])}
    reduce_times = []
    sum_gradients = world.sum_gradients

    def timed_sum(*args):
        world.barrier()  # the slower rank's compute is not the all-reduce's
        start = time.perf_counter()
        sum_gradients(*args)
        reduce_times.append(time.perf_counter() - start)

    world.sum_gradients = timed_sum

    def step():
        lm_train_step(model, optimizer, inputs, targets, pad_id=None)
    return step, reduce_times


# ----- the driver ----------------------------------------------------------------------------

def run(setup, args, ranks=1, threads=1):
    """One setup's point in fresh processes; None (and why) when it fails."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    command = [sys.executable, "-m", "bench.data_parallel", "--point", setup, "--model", args.model,
               "--vocab", str(args.vocab), "--d-model", str(args.d_model), "--layers", str(args.layers),
               "--heads", str(args.heads), "--batch", str(args.batch), "--context", str(args.context),
               "--repeats", str(args.repeats)]
    if ranks > 1:
        command = ["mpiexec", "-n", str(ranks), *command]
    else:  # one process: no mpiexec, no MPI
        env = {k: v for k, v in env.items() if k not in distributed.SIZE_VARIABLES}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        print(f"  {setup} x {ranks} failed:\n{done.stderr.strip()[-2000:]}", file=sys.stderr)
        return None
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  {label(setup, ranks, threads)}: {result['times']} ms", flush=True)
    return result


def label(setup, ranks, threads):
    if setup == "torch":
        return f"PyTorch x {threads} threads"
    if ranks > 1:
        return f"{ranks} ranks x 1 thread"
    return "1 rank x 1 thread" if threads == 1 else f"1 process x {threads} threads"


def gradient_bytes(args):
    """The bytes one step all-reduces: every parameter's float32 gradient, of the token
    embedding only the rows of the batch's distinct tokens."""
    backend.seed(0)
    model = LanguageModel(args.vocab, args.d_model, args.layers, args.heads, max_len=args.context, mixer=args.model)
    ids = np.random.default_rng(0).integers(0, args.vocab, (args.batch, args.context + 1))
    embedding = model.token_embedding.weight
    rows = len(np.unique(ids[:, :-1]))
    return 4 * (model.num_parameters() - embedding.size + rows * args.d_model)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=MIXERS, default="summation")
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--d-model", type=int, default=512)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8, help="the global batch")
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per setup")
    parser.add_argument("--max-ranks", type=int, default=os.cpu_count(), help="N ranks up to this (default: cores)")
    parser.add_argument("--point", choices=["minisum", "torch"], help=argparse.SUPPRESS)  # a child's job
    args = parser.parse_args()
    if args.point:
        return point(args)

    cores = os.cpu_count()
    print(machine_line())
    print(f"{args.model}, d {args.d_model}, {args.layers} layers, {args.heads} heads, global batch {args.batch}, "
          f"context {args.context}, V {args.vocab:,}; median of {args.repeats} steps per setup")
    rows = {}
    rows[label("minisum", 1, 1)] = run("minisum", args)
    if cores > 1:
        rows[label("minisum", 1, cores)] = run("minisum", args, threads=cores)
    mpi = shutil.which("mpiexec") and importlib.util.find_spec("mpi4py")
    for ranks in range(2, min(args.max_ranks, args.batch) + 1):
        if not mpi:
            print("  no mpiexec or mpi4py (pip install \".[mpi]\"): no N-rank rows")
            break
        rows[label("minisum", ranks, 1)] = run("minisum", args, ranks=ranks)
    if importlib.util.find_spec("torch"):
        rows[label("torch", 1, cores)] = run("torch", args, threads=cores)
    else:
        print("  PyTorch is not installed: no PyTorch row")
    print_tables(args, rows, cores)


def print_tables(args, rows, cores):
    one = rows.get("1 rank x 1 thread")
    torch_row = rows.get(f"PyTorch x {cores} threads")
    flops = step_flops(args.d_model, args.vocab, args.layers, args.batch, args.context, args.model)
    lines = []
    for name, r in rows.items():
        if r is None:
            lines.append([name, "failed", "", "", "", ""])
            continue
        lines.append([name, f"{r['ms']:,.0f}", f"{one['ms'] / r['ms']:.2f}x" if one else "-",
                      f"{r['ms'] / torch_row['ms']:.2f}" if torch_row else "-",
                      f"{r['allreduce_ms']:,.0f}" if r["ranks"] > 1 else "-",
                      f"{100 * flops / (r['ms'] / 1e3) / 1e9 / r['ceiling']:.0f}%"])
    print("\n" + table(["setup", "ms/step", "speed-up vs 1 rank", "vs PyTorch", "all-reduce ms", "of ceiling"], lines))
    print("vs PyTorch: ms/step over PyTorch's (below 1: faster); of ceiling: matmul GFLOP/s over the same "
          "setup's float32 matmul rate")

    two = rows.get("2 ranks x 1 thread")
    if not (one and two):
        return
    compute = (two["ms"] - two["allreduce_ms"]) / 1e3  # a rank's step on half the batch, without the sum
    sent = gradient_bytes(args)
    bandwidth = sent / (two["allreduce_ms"] / 1e3)  # 2 ranks: each sends and receives the whole once
    per_rank = args.batch / 2
    print(f"\nA MODEL, not a measurement: {per_rank:g} rows per rank as measured (the global batch grows with "
          f"the ranks), a rank's compute {1e3 * compute:,.0f} ms as measured with 2 ranks, a ring all-reduce of "
          f"{sent / 1e6:,.0f} MB at the {bandwidth / 1e9:.2f} GB/s the 2-rank all-reduce reached; memory bandwidth "
          "shared by the cores of one machine, the network between machines and stragglers are not modelled")
    lines = []
    for ranks in MODELLED_RANKS:
        reduce_s = 2 * (ranks - 1) / ranks * sent / bandwidth
        step = compute + reduce_s
        tokens = per_rank * ranks * args.context / step
        lines.append([ranks, f"{per_rank * ranks:g}", f"{1e3 * compute:,.0f}", f"{1e3 * reduce_s:,.0f}",
                      f"{1e3 * step:,.0f}", f"{tokens:,.0f}",
                      f"{tokens / (args.batch * args.context / (one['ms'] / 1e3)):.1f}x"])
    print(table(["ranks (model)", "global batch", "compute ms", "all-reduce ms", "ms/step", "tokens/s",
                 "tokens/s vs 1 rank"], lines))


if __name__ == "__main__":
    main()
