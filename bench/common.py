"""What the benchmark scripts share: timing, the matmul ceiling, one subprocess per
measured point (for honest peak memory), tables and log-log plots.

Timings are medians after a warm-up call: on a shared machine a single run can be
several times slower than usual, and the median of a few is what stays stable.
"""
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def time_calls(fn, repeats, warmup=1, sync=None):
    """Seconds taken by each of `repeats` calls of fn(), after `warmup` untimed calls.
    `sync` (e.g. a GPU synchronise) runs before each clock read."""
    sync = sync or (lambda: None)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


def time_for_at_least(fn, seconds, min_repeats=3, max_repeats=200, sync=None):
    """Repeat fn() until `seconds` have passed (at least `min_repeats` times): many runs of a
    fast call, few of a slow one. Returns the list of call times (one warm-up call not counted)."""
    times = time_calls(fn, 1, warmup=1, sync=sync)
    while len(times) < max_repeats and (len(times) < min_repeats or sum(times) < seconds):
        times += time_calls(fn, 1, warmup=0, sync=sync)
    return times


def median(values):
    return statistics.median(values)


def spread(values):
    """max/min of the timings: how noisy the machine was during the measurement."""
    return max(values) / min(values)


def matmul_ceiling(n=2048, repeats=5):
    """The machine's float32 matrix-multiply rate in GFLOP/s (median over `repeats` n x n products),
    measured through NumPy's BLAS: the most any NumPy program can get out of this CPU."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    return 2 * n ** 3 / median(time_calls(lambda: a @ b, repeats)) / 1e9


def _proc_status_mb(field):
    """A memory field of /proc/self/status (Linux) in MB, or None where there is none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return None


def peak_rss_mb():
    """This process's peak resident memory so far, in MB (10^6 bytes)."""
    mb = _proc_status_mb("VmHWM")
    if mb is not None:
        return mb
    import resource  # not Linux: ru_maxrss is kB on Linux, bytes on macOS
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1e6


def current_rss_mb():
    """This process's resident memory now, in MB (Linux; 0 elsewhere)."""
    return _proc_status_mb("VmRSS") or 0.0


def run_point(module, args, timeout):
    """Run `python -m module args...` from the repository root in a fresh process and return
    the JSON object it prints as its last line of output. A fresh process per point means its
    peak memory is that point's alone. Returns None (and says why) if it fails or times out."""
    cmd = [sys.executable, "-m", module, *map(str, args)]
    try:
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"  point {' '.join(map(str, args))}: over {timeout} s, stopped", file=sys.stderr)
        return None
    if done.returncode != 0:
        print(f"  point {' '.join(map(str, args))} failed:\n{done.stderr.strip()[-2000:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_point(result):
    """The child's side of `run_point`: one JSON line on stdout."""
    print(json.dumps(result), flush=True)


def machine_line():
    """One line saying where the numbers came from."""
    threads = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or "default"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (load average {load}), "
            f"Python {platform.python_version()}, NumPy {np.__version__}, BLAS threads {threads}")


def table(headers, rows):
    """A Markdown table (printed as is: it reads fine in a terminal and pastes into the docs)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def loglog_plot(path, series, xlabel, ylabel, title, references):
    """Save a log-log plot of `series` ({label: (xs, ys)}) with a gray reference line for
    each (series label, slope) in `references`, drawn through that series' last point (the
    largest n, where the leading term dominates): slope 1 is O(n), slope 2 is O(n^2)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    fig, ax = plt.subplots(figsize=(5.5, 4), dpi=100)
    for label, (xs, ys) in series.items():
        ax.loglog(xs, ys, "o-", label=label)
    xs_all = sorted({x for xs, _ in series.values() for x in xs})
    for label, slope in references:
        xs, ys = series[label]
        ax.loglog(xs_all, [ys[-1] * (x / xs[-1]) ** slope for x in xs_all], "--" if slope == 1 else ":", color="gray",
                  label="O(n)" if slope == 1 else f"O(n^{slope})")
    ax.set_xticks(xs_all, [f"{x:,}" for x in xs_all], rotation=45)  # the measured n, not 10^k
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
