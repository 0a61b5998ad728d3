"""Generation cost versus context length for the three language-model variants.

    python -m bench.generation                       # contexts 512 ... 8,192
    python -m bench.generation --contexts 512 2048 --tokens 16

For each variant and context n, a fresh process feeds n - 1 tokens through
`LanguageModel.forward` with caches (in chunks of 512, as a prompt would be), then
generates --tokens tokens one at a time, greedily, the way `generate` does: the running
sum of each summation layer, the key/value cache of each attention layer. It reports the
median time of one new token at position n, its inverse (tokens/s), the bytes the caches
hold, and the peak resident memory while generating (the peak is reset after the prompt,
so it is the memory generation needs, not the prompt's temporaries). That peak includes
the model, whose learned positional table has n + --tokens rows (2 KB per position).
Model: d 512, 4 layers, 8 heads (the paper's), vocabulary 8,192.
"""
import argparse
import ctypes
import json
import time

import numpy as np

from bench.common import (RESULTS, current_rss_mb, loglog_plot, machine_line, median, peak_rss_mb, print_point,
                          run_point, table)

VARIANTS = ("summation", "hybrid", "attention")
PROMPT_CHUNK = 512


def reset_peak_rss():
    """Start a new peak-memory measurement (Linux): first hand the memory the prompt's
    temporaries left in the allocator back to the system (glibc's malloc_trim), then reset
    VmHWM by writing 5 to clear_refs."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc: the peak may then include freed prompt memory
        pass
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def cache_bytes(caches):
    return sum(t.data.nbytes for cache in caches for t in cache.values())


def measure_point(mixer, n, tokens, vocab, d_model, layers, heads):
    from minisum import no_grad
    from minisum.backend import seed
    from minisum.models import LanguageModel

    seed(0)
    model = LanguageModel(vocab, d_model, layers, heads, max_len=n + tokens, mixer=mixer).eval()
    prompt = np.random.default_rng(0).integers(0, vocab, (1, n - 1))
    caches = model.new_caches()
    with no_grad():
        for start in range(0, n - 1, PROMPT_CHUNK):
            logits = model(prompt[:, start:start + PROMPT_CHUNK], caches, start=start)
        next_id = int(np.argmax(logits.data[0, -1]))
        reset_peak_rss()
        times = []
        for position in range(n - 1, n - 1 + tokens):
            start_time = time.perf_counter()
            logits = model(np.array([[next_id]]), caches, start=position)
            next_id = int(np.argmax(logits.data[0, -1]))
            times.append(time.perf_counter() - start_time)
    return dict(mixer=mixer, n=n, times=times, cache_mb=cache_bytes(caches) / 1e6, peak_mb=peak_rss_mb(),
                rss_mb=current_rss_mb())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--contexts", nargs="+", type=int, default=[512, 1024, 2048, 4096, 8192])
    parser.add_argument("--tokens", type=int, default=32, help="tokens generated (and timed) at each context")
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--d-model", type=int, default=512)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--point", nargs=2, metavar=("MIXER", "N"), help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    sizes = ["--tokens", args.tokens, "--vocab", args.vocab, "--d-model", args.d_model, "--layers", args.layers,
             "--heads", args.heads]
    if args.point:
        print_point(measure_point(args.point[0], int(args.point[1]), args.tokens, args.vocab, args.d_model,
                                  args.layers, args.heads))
        return

    print(machine_line())
    results = {mixer: [] for mixer in args.models}
    for mixer in args.models:
        for n in args.contexts:
            point = run_point("bench.generation", ["--point", mixer, n, *sizes], timeout=600)
            if point is None:
                break
            results[mixer].append(point)
            print(f"  {mixer:9s} n {n:5d}: {1e3 * median(point['times']):7.2f} ms/token, cache "
                  f"{point['cache_mb']:.1f} MB, peak {point['peak_mb']:.0f} MB", flush=True)
    report(results, args)


def report(results, args):
    rows = []
    for mixer, points in results.items():
        for p in points:
            t = median(p["times"])
            rows.append([mixer, f"{p['n']:,}", f"{1e3 * t:.2f}", f"{1 / t:,.0f}", f"{p['cache_mb']:.2f}",
                         f"{p['peak_mb']:,.0f}"])
    print(f"\ngeneration, d {args.d_model}, {args.layers} layers, {args.heads} heads, V {args.vocab:,}, batch 1; "
          f"median over {args.tokens} new tokens at position n")
    print(table(["model", "context n", "ms/token", "tokens/s", "cache MB", "peak MB"], rows))
    for mixer, points in results.items():
        if len(points) > 1:
            per_token = [median(p["times"]) for p in points]
            print(f"{mixer}: time per token at {points[-1]['n']:,} / at {points[0]['n']:,} = "
                  f"{per_token[-1] / per_token[0]:.2f}")
    series = {m: ([p["n"] for p in pts], [1e3 * median(p["times"]) for p in pts]) for m, pts in results.items() if pts}
    refs = [(m, 1) for m in ("attention",) if m in series]
    loglog_plot(RESULTS / "generation_time.png", series, "context position n", "ms per generated token",
                f"Generation, d {args.d_model}, {args.layers} layers", refs)
    (RESULTS / "generation.json").write_text(json.dumps(results, indent=1))
    print(f"saved {RESULTS / 'generation_time.png'}")


if __name__ == "__main__":
    main()
