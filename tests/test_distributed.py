"""Data-parallel training (minisum/distributed.py, docs/distributed.md).

The World's collectives run here on threads of this process standing in for ranks (a stand-in
communicator that really sums across them), on NumPy and on the CuPy emulation (where NCCL
would carry them). The training scripts run under `mpiexec -n 2` against one process: the same
losses to the order of the sums (float64 to 1e-10, float32 to 1e-5), a 2-rank run interrupted
and resumed with 1 rank equal to an uninterrupted run, and a failing rank ending the run.
Those tests skip, saying why, without mpi4py or mpiexec (pip install ".[mpi]").
"""
import contextlib
import importlib.util
import json
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import minisum
from conftest import emulated_gpu
from minisum import distributed
from minisum.backend import get_array_module
from minisum.checkpoint import read_checkpoint
from minisum.distributed import World
from minisum.errors import UserError
from minisum.run.meter import Meter
from minisum.run.progress import Progress
from minisum.run.run import Run
from minisum.run.signals import StopRequest

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "tests" / "distributed_launch.py"
# train_lm.py's tiny protocol (tests/test_train_lm.py): 16 samples in batches of 4, 8 for validation.
LM = ["train_lm.py", "--data-dir", str(ROOT / "tests" / "fixtures" / "lm"), "--tokenizer", "bpe:300", "--d-model",
      "16", "--layers", "2", "--heads", "2", "--context", "32", "--batch-size", "4", "--train-samples", "16",
      "--valid-samples", "8", "--lr", "1e-2", "--epochs", "2"]
# train_cls.py on the AG News fixture: 4 training texts in batches of 3, so that in the last batch
# one of two ranks has no row.
CLS = ["train_cls.py", "--dataset", "ag_news", "--data-dir", str(ROOT / "tests" / "fixtures" / "cls" / "ag_news"),
       "--vocab-size", "50", "--seq-len", "16", "--d-model", "8", "--heads", "2", "--head-dim", "4",
       "--batch-size", "3", "--epochs", "3", "--lr", "1e-2"]
# train_mm.py on its 200-row fixture without dropout (each rank draws its own rows' masks).
MM = ["train_mm.py", "--data-file", str(ROOT / "tests" / "fixtures" / "mm" / "synthetic_200.csv"), "--seq-len", "16",
      "--d-model", "8", "--head-dim", "4", "--max-tokens", "50", "--epochs", "3", "--dropout", "0"]
TIMEOUT = 120  # seconds for a tiny run: a hang fails the test instead of stalling the suite


# ----- a stand-in communicator: threads as ranks ------------------------------------------

class ThreadCollectives:
    """The collectives of rank `rank` among threads that share `shared`; each waits for all."""

    def __init__(self, rank, shared):
        self.rank, self.shared = rank, shared

    def _exchange(self, value):
        slots, barrier = self.shared["slots"], self.shared["barrier"]
        slots[self.rank] = value
        barrier.wait()
        values = list(slots)
        barrier.wait()
        return values

    def allreduce_(self, array, maximum=False):
        values = self._exchange(array.copy())
        xp, total = get_array_module(array), values[0]
        for value in values[1:]:
            total = xp.maximum(total, value) if maximum else total + value
        array[...] = total

    def broadcast_(self, array):
        array[...] = self._exchange(array.copy())[0]

    def allgather(self, value):
        return self._exchange(value)

    def barrier(self):
        self._exchange(None)


def run_ranks(size, body):
    """body(world) on `size` threads, each a rank of one World; returns their results by rank."""
    shared = {"slots": [None] * size, "barrier": threading.Barrier(size, timeout=10)}
    results, errors = [None] * size, []

    def run(rank):
        collectives = ThreadCollectives(rank, shared)
        try:
            results[rank] = body(World(rank, size, host=collectives, device=lambda: collectives))
        except BaseException as err:  # noqa: BLE001 (re-raised below, in the test's thread)
            errors.append(err)
            shared["barrier"].abort()

    threads = [threading.Thread(target=run, args=(rank,)) for rank in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def ranks_parameters(xp, shapes, seed):
    """Per rank: leaf tensors with the same values and that rank's random gradients."""
    rng = np.random.default_rng(seed)
    values = [rng.normal(size=shape) for shape in shapes]
    return [[_leaf(xp, v, rng.normal(size=v.shape)) for v in values] for _ in range(2)]


def _leaf(xp, value, grad):
    tensor = minisum.Tensor(xp.asarray(value), requires_grad=True)
    tensor.grad = xp.asarray(grad)
    return tensor


def host(a):
    return a.get() if hasattr(a, "get") else a


# ----- the World's collectives --------------------------------------------------------------

SHAPES = [(3, 4), (5,), (20,), (2, 3), (7,)]  # with BUCKET 16: the (20,) alone, in place; the rest in 3 buckets


def check_weighted_sum(xp, monkeypatch, watch=contextlib.nullcontext):
    """sum_gradients on two ranks, checked on the host; `watch()` surrounds the sum alone."""
    monkeypatch.setattr(distributed, "BUCKET", 16)
    params = ranks_parameters(xp, SHAPES, seed=0)
    params[1][1].grad = None  # this rank has no gradient for it (no rows): zeros
    params[0][4].grad = params[1][4].grad = None  # no rank has one: it keeps none
    before = [[None if p.grad is None else host(p.grad).copy() for p in rank] for rank in params]
    shares = (0.25, 0.75)
    with watch():
        run_ranks(2, lambda world: world.sum_gradients(params[world.rank], shares[world.rank]))
    for i in range(4):
        expected = sum(share * grads[i] for share, grads in zip(shares, before) if grads[i] is not None)
        for rank in range(2):
            np.testing.assert_allclose(host(params[rank][i].grad), expected, rtol=1e-14, atol=0)
    assert params[0][4].grad is None and params[1][4].grad is None
    return params


def test_gradients_are_the_shares_weighted_sum_on_every_rank(monkeypatch):
    check_weighted_sum(np, monkeypatch)


def test_on_the_gpu_the_gradients_never_leave_the_device(monkeypatch):
    """The NCCL path's World on the CuPy emulation, with the stand-in communicator in NCCL's place."""
    with emulated_gpu() as cupy:
        transfers = []

        @contextlib.contextmanager
        def watch():
            cupy._emulation.counts.reset()
            yield
            transfers.extend([cupy._emulation.counts.syncs, cupy._emulation.counts.to_device])

        params = check_weighted_sum(cupy, monkeypatch, watch)
        assert all(isinstance(p.grad, cupy.ndarray) for rank in params for p in rank[:4])
        assert transfers == [0, 0]  # no host sync, no copy to the device during sum_gradients


def test_of_an_embedding_only_the_rows_of_the_batch_are_sent_and_the_sum_is_whole(monkeypatch):
    monkeypatch.setattr(distributed, "BUCKET", 16)
    rng = np.random.default_rng(2)
    tokens = [np.array([1, 4, 4]), np.array([6, 1])]  # each rank's tokens; the batch's: 1, 4, 6
    params = [[_leaf(np, np.zeros((8, 3)), np.zeros((8, 3))), _leaf(np, np.zeros(5), rng.normal(size=5))]
              for _ in range(2)]
    for rank in range(2):
        np.add.at(params[rank][0].grad, tokens[rank], rng.normal(size=(len(tokens[rank]), 3)))
    expected = [0.5 * params[0][i].grad + 0.5 * params[1][i].grad for i in range(2)]
    sent = []
    monkeypatch.setattr(ThreadCollectives, "allreduce_", _recording(ThreadCollectives.allreduce_, sent))
    touched = {rank: {id(params[rank][0]): np.array([1, 4, 6])} for rank in range(2)}
    run_ranks(2, lambda world: world.sum_gradients(params[world.rank], 0.5, touched[world.rank]))
    for rank in range(2):
        for i in range(2):
            np.testing.assert_allclose(params[rank][i].grad, expected[i], rtol=1e-14, atol=0)
    assert sorted(sent)[-1] == 3 * 3 + 5  # one bucket: the 3 rows of the embedding and the vector


def _recording(allreduce, sizes):
    def record(self, array, maximum=False):
        if not maximum and array.dtype.kind == "f":
            sizes.append(array.size)
        return allreduce(self, array, maximum)
    return record


def test_rank_0s_parameters_reach_every_rank():
    params = ranks_parameters(np, SHAPES, seed=1)
    for p in params[1]:
        p.data += 1.0  # rank 1 starts elsewhere
    run_ranks(2, lambda world: world.broadcast_parameters(params[world.rank]))
    for zero, one in zip(*params):
        np.testing.assert_array_equal(zero.data, one.data)


def test_the_ranks_shares_cover_each_batch_once():
    for size in range(1, 5):
        for n in range(0, 9):
            shares = [World(rank, size).rows(n) for rank in range(size)]
            assert sum((list(range(n))[s] for s in shares), []) == list(range(n))
            assert max(s.stop - s.start for s in shares) - min(s.stop - s.start for s in shares) <= 1
            order = np.arange(100, 100 + n)
            assert np.concatenate([World(rank, size).mine(order) for rank in range(size)]).tolist() == order.tolist()
            assert [World(rank, size).mine(slice(10, 10 + n)) for rank in range(size)] == \
                [slice(10 + s.start, 10 + s.stop) for s in shares]


def test_metric_sums_and_a_resumed_pass_count_once():
    state = {"batches": 2, "weight": 2, "count": 10, "loss_sum": 3.0, "hits": 4}  # a checkpoint's partial pass

    def body(world):
        meter = Meter(state, world)
        meter.add(np.float64(1.0 + world.rank), weight=1, hits=np.int64(world.rank + 1), count=5, share=0.5)
        return meter.read()

    for meter in run_ranks(2, body):
        assert meter.loss == (3.0 + 0.5 * 1.0 + 0.5 * 2.0) / 3 and meter.accuracy == (4 + 1 + 2) / 15


def test_every_rank_stops_on_a_signal_one_of_them_received():
    stops = [StopRequest(), StopRequest()]
    stops[1].signum = signal.SIGTERM
    assert run_ranks(2, lambda world: stops[world.rank].agreed(world)) == [signal.SIGTERM] * 2
    assert all(stop.stopped().exit_code == 143 for stop in stops)


def test_ranks_with_different_data_are_refused_on_every_rank():
    def body(world):
        with pytest.raises(UserError, match=r"do not agree on the data: rank\(s\) 1 differ"):
            world.check_same(f"fingerprint {world.rank}", "the data")
    run_ranks(2, body)


class Folder:
    """A run folder that records whether it was opened."""

    def __init__(self, path):
        self.path, self.opened = path, []

    def open(self, args):
        self.opened.append(args)


def test_ranks_that_would_resume_from_different_points_are_refused_before_the_folder_is_opened(tmp_path):
    """As when the run folder is not shared by every machine: rank 1 read no checkpoint, or another."""
    def resume(epochs_by_rank):
        folders = [Folder(tmp_path / "run") for _ in epochs_by_rank]

        def body(world):
            epochs = epochs_by_rank[world.rank]
            progress = None if epochs is None else Progress(record={"epochs": [{}] * epochs}, epoch_rng=None)
            Run(None, folders[world.rank], world).open({"summation": progress})
        run_ranks(len(epochs_by_rank), body)
        return [len(folder.opened) for folder in folders]

    for epochs_by_rank in ([2, None], [2, 1]):
        with pytest.raises(UserError, match=r"do not agree on the checkpoints in .*run \(a folder every rank must "
                                            r"read\): rank\(s\) 1 differ"):
            resume(epochs_by_rank)
    assert resume([2, 2]) == [1, 0]  # rank 0 alone makes the folder


def test_without_mpiexec_one_rank_and_no_mpi_imported():
    code = ("import sys, train_lm; from minisum import distributed; w = distributed.world(); "
            "assert (w.rank, w.size) == (0, 1); assert 'mpi4py' not in sys.modules; print('ok')")
    env = {k: v for k, v in __import__("os").environ.items() if k not in distributed.SIZE_VARIABLES}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=TIMEOUT)
    assert out.stdout.strip() == "ok", out.stderr


def test_mpiexec_without_mpi4py_is_one_line(monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py fails
    monkeypatch.setattr(distributed, "_world", None)
    with pytest.raises(UserError, match=r'mpiexec started 2 processes, but mpi4py is not installed: '
                                        r'pip install ".\[mpi\]"'):
        distributed.world()


# ----- the scripts under mpiexec ----------------------------------------------------------

def mpi_missing():
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py is not installed (pip install \".[mpi]\")"
    if shutil.which("mpiexec") is None:
        return "no mpiexec on PATH (pip install mpich, or a system MPI)"
    return None


needs_mpi = pytest.mark.skipif(mpi_missing() is not None, reason=f"no MPI: {mpi_missing()}")


def launch(command, out_dir, ranks=1, options=(), extra=()):
    """Run `command` (a script and its flags) through tests/distributed_launch.py; 1 rank: no mpiexec."""
    line = [sys.executable, str(LAUNCH), *options, *command, "--out-dir", str(out_dir), *extra]
    if ranks > 1:
        line = ["mpiexec", "-n", str(ranks), *line]
    return subprocess.run(line, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)


def logged_losses(results_path):
    """Every loss and accuracy results.json logs, by model and epoch."""
    models = json.loads(Path(results_path).read_text())["models"]
    return {(name, i, key): value for name, record in models.items()
            for i, epoch in enumerate(record.get("epochs", record.get("history", [])))
            for key, value in epoch.items() if "loss" in key or "acc" in key}


def largest_difference(a, b):
    assert a.keys() == b.keys() and a
    return max(abs(a[key] - b[key]) for key in a)


def results_of(command, out_dir):
    return out_dir / "ag_news" / "results.json" if command is CLS else out_dir / "results.json"


@needs_mpi
@pytest.mark.parametrize("command, precision, tolerance", [(LM, "float64", 1e-10), (LM, "float32", 1e-5),
                                                          (CLS, "float64", 1e-10), (MM, "float32", 1e-5)],
                         ids=["lm-64", "lm-32", "cls-64", "mm-32"])
def test_two_ranks_log_the_losses_of_one_process(command, precision, tolerance, tmp_path):
    options = ["--float64"] if precision == "float64" else []
    one, two = (launch(command, tmp_path / f"ranks-{n}", n, options) for n in (1, 2))
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    assert two.stdout.count("epoch  1") + two.stdout.count("epoch 1/") == \
        one.stdout.count("epoch  1") + one.stdout.count("epoch 1/") > 0  # rank 0 alone prints
    report = json.loads(results_of(command, tmp_path / "ranks-2").read_text())
    assert report["ranks"] == 2
    difference = largest_difference(logged_losses(results_of(command, tmp_path / "ranks-1")),
                                    logged_losses(results_of(command, tmp_path / "ranks-2")))
    print(f"{command[0]} {precision}, 2 ranks against 1 process: largest difference {difference:.3g}")
    assert difference <= tolerance


@needs_mpi
def test_two_ranks_interrupted_and_resumed_with_one_equal_an_uninterrupted_run(tmp_path):
    whole = launch(LM, tmp_path / "whole", 1, ["--float64"])
    assert whole.returncode == 0, whole.stderr
    stopped = launch(LM, tmp_path / "split", 2, ["--float64", "--signal-at", "3"])  # epoch 1, batch 3 of 4
    assert stopped.returncode == 143, stopped.stderr
    assert "attention: stopped in epoch 1 after 3 batches" in stopped.stderr
    resumed = subprocess.run([sys.executable, str(LAUNCH), "--float64", "train_lm.py", "--resume", "--out-dir",
                              str(tmp_path / "split")], cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
    assert resumed.returncode == 0, resumed.stderr
    difference = largest_difference(logged_losses(tmp_path / "whole" / "results.json"),
                                    logged_losses(tmp_path / "split" / "results.json"))
    print(f"2 ranks stopped in epoch 1, resumed with 1: largest difference in the losses {difference:.3g}")
    assert difference <= 1e-10
    for name in ("attention", "summation", "hybrid"):
        a, b = (read_checkpoint(tmp_path / run / f"{name}.npz")["model"] for run in ("whole", "split"))
        assert max(float(np.abs(a[k] - b[k]).max()) for k in a) <= 1e-10


@needs_mpi
@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_to_mpiexec_stops_every_rank_after_one_checkpoint(signum, status, tmp_path):
    """As a scheduler (SIGTERM) or Ctrl-C (SIGINT) would: mpiexec forwards it to every rank."""
    out_dir = tmp_path / "run"
    line = ["mpiexec", "-n", "2", sys.executable, *LM, "--epochs", "1000", "--models", "summation",
            "--out-dir", str(out_dir)]
    with open(tmp_path / "stderr", "w") as stderr:
        process = subprocess.Popen(line, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True)
        try:
            for printed in process.stdout:  # rank 0's lines: training has begun once an epoch is reported
                if printed.startswith("summation epoch 1/"):
                    break
            process.send_signal(signum)
            process.communicate(timeout=TIMEOUT)
        finally:
            process.kill()
    assert process.returncode == status, (tmp_path / "stderr").read_text()
    saved = read_checkpoint(out_dir / "summation.npz")["extra"]["record"]
    assert saved["status"] == "interrupted" and saved["epochs"]
    resumed = subprocess.run([sys.executable, "train_lm.py", "--resume", "--epochs", str(len(saved["epochs"]) + 1),
                              "--out-dir", str(out_dir)], cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out_dir / "results.json").read_text())["models"]["summation"]["status"] == "finished"


@needs_mpi
def test_a_failing_rank_ends_every_rank_in_one_line(tmp_path):
    failed = launch(LM, tmp_path / "run", 2, ["--fail-at", "2"])
    assert failed.returncode != 0
    ours = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert ours == ["error: rank 1 of 2: RuntimeError: injected failure in step 2"]


@needs_mpi
def test_a_rank_without_its_data_ends_the_run_before_anything_is_written(tmp_path):
    out_dir = tmp_path / "run"
    flags = [*LM[1:], "--out-dir", str(out_dir)]
    missing = [*flags[:flags.index("--data-dir")], "--data-dir", str(tmp_path / "nowhere"),
               *flags[flags.index("--data-dir") + 2:]]
    failed = subprocess.run(["mpiexec", "-n", "1", sys.executable, "train_lm.py", *flags, ":",
                             "-n", "1", sys.executable, "train_lm.py", *missing],
                            cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
    assert failed.returncode == 2
    ours = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(ours) == 1 and ours[0].startswith(f"error: rank 1 of 2: --data-dir {tmp_path / 'nowhere'} is not")
    assert not out_dir.exists()
