"""Training cost of one block versus context length: summation against attention.

    python -m bench.context_scaling                     # n = 128 ... 16,384
    python -m bench.context_scaling --max-n 4096 --seconds 1
    python -m bench.context_scaling --torch             # PyTorch's blocks too, same machine, same run

One post-norm block (d 256, batch 1; attention with 4 heads), forward and backward on a
random (1, n, 256) input. Each point runs in a fresh Python process, so the peak resident
memory it reports is that point's alone; "activations" is that peak minus the memory the
process held just before the first forward pass (interpreter, libraries, block, input).
Attention stops where the next point, extrapolated from the last one as O(n^2), would
take over --max-seconds per pass or over --max-gb of memory.
Prints a table and saves bench/results/context_time.png and context_memory.png.
"""
import argparse
import json

import numpy as np

from bench.common import (RESULTS, current_rss_mb, loglog_plot, machine_line, median, peak_rss_mb, print_point,
                          run_point, spread, table, time_for_at_least)

MIXERS = ("summation", "attention")


def minisum_block(mixer, n, d_model, heads):
    """forward + backward of a minisum block on a random (1, n, d_model) input, as a function."""
    from minisum import Tensor
    from minisum.backend import seed
    from minisum.nn import attention_block, summation_block

    seed(0)
    block = summation_block(d_model) if mixer == "summation" else attention_block(d_model, heads)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((1, n, d_model), dtype=np.float32), requires_grad=True)
    upstream = rng.standard_normal((1, n, d_model), dtype=np.float32)

    def forward_backward():
        block.zero_grad()
        x.grad = None
        block(x).backward(upstream)
    return forward_backward


def torch_block(mixer, n, d_model, heads, threads):
    """The same for the PyTorch block of minisum/torch_reference.py."""
    import torch
    from minisum.torch_reference import AttentionBlock, SummationBlock

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    block = SummationBlock(d_model) if mixer == "summation" else AttentionBlock(d_model, heads)
    x = torch.randn(1, n, d_model, requires_grad=True)
    upstream = torch.randn(1, n, d_model)

    def forward_backward():
        block.zero_grad()
        x.grad = None
        block(x).backward(upstream)
    return forward_backward


def measure_point(library, mixer, n, args):
    """Median seconds and peak memory of one block's forward + backward (run in a child process)."""
    if library == "torch":
        fn = torch_block(mixer, n, args.d_model, args.heads, args.threads)
    else:
        fn = minisum_block(mixer, n, args.d_model, args.heads)
    baseline = current_rss_mb()
    times = time_for_at_least(fn, args.seconds)
    peak = peak_rss_mb()
    return dict(library=library, mixer=mixer, n=n, times=times, peak_mb=peak, activations_mb=peak - baseline)


def too_big(last, n, args):
    """Whether the point at n, extrapolated as O(n^2) from the last one, breaks the limits."""
    growth = (n / last["n"]) ** 2
    base_mb = last["peak_mb"] - last["activations_mb"]
    seconds, gb = median(last["times"]) * growth, (base_mb + last["activations_mb"] * growth) / 1e3
    if seconds > args.max_seconds or gb > args.max_gb:
        return f"about {seconds:.0f} s and {gb:.1f} GB expected"
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--min-n", type=int, default=128)
    parser.add_argument("--max-n", type=int, default=16384)
    parser.add_argument("--seconds", type=float, default=3.0, help="time spent repeating each point (at least 3 runs)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="longest forward + backward to attempt")
    parser.add_argument("--max-gb", type=float, default=8.0, help="most memory to attempt")
    parser.add_argument("--torch", action="store_true", help="also time PyTorch's blocks")
    parser.add_argument("--threads", type=int, default=2,
                        help="PyTorch threads; NumPy's BLAS reads OPENBLAS_NUM_THREADS")
    parser.add_argument("--point", nargs=3, metavar=("LIBRARY", "MIXER", "N"), help=argparse.SUPPRESS)  # child
    args = parser.parse_args()
    if args.point:
        print_point(measure_point(args.point[0], args.point[1], int(args.point[2]), args))
        return

    print(machine_line())
    sizes = [2 ** k for k in range(21) if args.min_n <= 2 ** k <= args.max_n]
    options = ["--d-model", args.d_model, "--heads", args.heads, "--seconds", args.seconds, "--threads", args.threads]
    results = {}
    for library in ("minisum", "torch") if args.torch else ("minisum",):
        for mixer in MIXERS:
            points = results.setdefault(f"{library} {mixer}", [])
            for n in sizes:
                reason = too_big(points[-1], n, args) if mixer == "attention" and points else None
                if reason:
                    print(f"  {library} attention stops before n {n}: {reason}")
                    break
                point = run_point("bench.context_scaling", ["--point", library, mixer, n, *options],
                                  timeout=3 * args.max_seconds + 10 * args.seconds + 60)
                if point is None:
                    break
                points.append(point)
                print(f"  {library:7s} {mixer:9s} n {n:6d}: {1e3 * median(point['times']):9.1f} ms (max/min "
                      f"{spread(point['times']):.2f}, {len(point['times'])} runs), peak {point['peak_mb']:.0f} MB",
                      flush=True)
    report(results, args)


def report(results, args):
    by_n = {key: {p["n"]: p for p in points} for key, points in results.items()}
    print(f"\none block, d {args.d_model}, batch 1, attention {args.heads} heads; forward + backward; "
          "median time; peak resident memory of a fresh process")
    for library in ("minisum", "torch"):
        s, a = by_n.get(f"{library} summation"), by_n.get(f"{library} attention", {})
        if not s:
            continue
        rows = []
        for n, p in sorted(s.items()):
            row = [f"{n:,}", f"{1e3 * median(p['times']):,.1f}", f"{1e6 * median(p['times']) / n:.1f}",
                   f"{p['peak_mb']:,.0f}", f"{p['activations_mb']:,.0f}"]
            if n in a:
                q = a[n]
                row += [f"{1e3 * median(q['times']):,.1f}", f"{1e6 * median(q['times']) / n:.1f}",
                        f"{q['peak_mb']:,.0f}", f"{q['activations_mb']:,.0f}",
                        f"{median(q['times']) / median(p['times']):.1f}"]
            else:
                row += ["-"] * 5
            rows.append(row)
        print(f"\n{'minisum' if library == 'minisum' else 'PyTorch'}")
        print(table(["n", "summation ms", "µs/token", "peak MB", "activations MB",
                     "attention ms", "µs/token", "peak MB", "activations MB", "attention/summation"], rows))
    print_targets(by_n["minisum summation"], by_n["minisum attention"])

    series_time, series_mem = {}, {}
    for key, points in results.items():
        if not points:
            continue
        library, mixer = key.split()
        label = mixer if library == "minisum" else f"{mixer} (PyTorch)"
        ns = [p["n"] for p in points]
        series_time[label] = (ns, [median(p["times"]) for p in points])
        series_mem[label] = (ns, [max(p["activations_mb"], 0.1) for p in points])  # a log axis takes no zeros
    refs = [(m, slope) for m, slope in (("summation", 1), ("attention", 2)) if m in series_time]
    loglog_plot(RESULTS / "context_time.png", series_time, "context length n", "seconds (forward + backward)",
                f"One block, d {args.d_model}: time", refs)
    loglog_plot(RESULTS / "context_memory.png", series_mem, "context length n", "MB above the process baseline",
                f"One block, d {args.d_model}: peak memory", refs)
    (RESULTS / "context_scaling.json").write_text(json.dumps(results, indent=1))
    print(f"saved {RESULTS / 'context_time.png'}, {RESULTS / 'context_memory.png'}")


def print_targets(s, a):
    """Issue 8's targets for this benchmark, each with the measured figure."""
    per_token = [median(p["times"]) / n for n, p in s.items() if n >= 512]
    if len(per_token) > 1:
        flat = max(per_token) / min(per_token)
        print(f"summation time per token, max/min from 512 to {max(s):,}: {flat:.2f} (target <= 1.3: "
              f"{'met' if flat <= 1.3 else 'missed'})")
    if 8192 in s and 8192 in a:
        ratio = median(a[8192]["times"]) / median(s[8192]["times"])
        print(f"attention/summation at 8,192: {ratio:.1f} (target >= 40: {'met' if ratio >= 40 else 'missed'})")
    if 8192 in s:
        peak = s[8192]["peak_mb"]
        print(f"summation peak memory at 8,192: {peak:.0f} MB (target <= 300: {'met' if peak <= 300 else 'missed'})")
    if 8192 in s and 16384 in s:
        growth = s[16384]["activations_mb"] / s[8192]["activations_mb"]
        print(f"summation activations 16,384 / 8,192: {growth:.2f} (linear: 2)")


if __name__ == "__main__":
    main()
