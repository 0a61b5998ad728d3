"""Data parallelism: one process (a rank) per core or per GPU, each on its share of every batch.

Launched under `mpiexec -n N` (pip install ".[mpi]"), the N ranks train one model together:
every rank draws the same batches from the same seed, takes its share of each batch's rows,
and after the backward pass the ranks' gradients are summed, each weighted by its rank's share
of the batch, so that every rank steps with the gradient one process would have computed on the
whole batch (up to the order of the sums). Without mpiexec there is one rank and no MPI at all:
mpi4py is imported only when mpiexec started more than one process.

    world = distributed.world()                  # this process's rank and the world's size
    rows = world.rows(len(batch))                # this rank's share of a batch (or world.mine(batch))
    world.broadcast_parameters(params)           # rank 0's weights everywhere
    world.sum_gradients(params, share, touched)  # after backward: the weighted sum, in place
    world.sum(sums)                              # metrics summed over the ranks
    DistributedOptimizer(optimizer, world)       # step() sums the gradients first

Gradients are summed by in-place all-reduces on a few buckets (each large parameter alone, in
place; the small ones packed together into one buffer), not one call per parameter; of an
embedding's gradient only the rows of the batch's tokens are sent (4% of them at the paper's
vocabulary and batch), since every other row is zero on every rank. NumPy arrays go through
MPI; CuPy arrays through NCCL (`cupy.cuda.nccl`, its unique id broadcast over MPI), so
gradients never leave the GPU. The NCCL path runs in the tests on the CuPy
emulation with a stand-in communicator only: it is untested on GPUs (docs/distributed.md).
"""
import os
import sys
import time

import numpy as np

from minisum.backend import get_array_module, is_cupy_array
from minisum.errors import UserError

BUCKET = 2 ** 22  # entries packed into one all-reduce: 16 MB of float32, as DDP's 25 MB buckets
# Environment variables through which mpiexec tells a process how many it started (MPICH, Open MPI).
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")
REPORT_DELAY = 1.0  # seconds a rank other than 0 waits before reporting an error (see fail)


class World:
    """The ranks of one run. `host`: the collectives on NumPy arrays (MPI); `device`: a function
    returning those on CuPy arrays (NCCL), made on first use. One rank needs neither."""

    def __init__(self, rank=0, size=1, host=None, device=None):
        self.rank, self.size = rank, size
        self.host, self._make_device, self._device = host, device, None
        self._buffers = {}  # (dtype, array module): the reused bucket buffer

    @property
    def is_main(self):
        """Rank 0, the one that prints and writes."""
        return self.rank == 0

    def rows(self, n):
        """This rank's share of n rows: a slice of consecutive rows, the first ranks one more
        when n does not divide evenly (empty when n < size)."""
        base, extra = divmod(n, self.size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def mine(self, batch):
        """This rank's share of a batch given as a slice of rows (stop included, not None) or as an
        array of row indices."""
        if isinstance(batch, slice):
            share = self.rows(batch.stop - batch.start)
            return slice(batch.start + share.start, batch.start + share.stop)
        return batch[self.rows(len(batch))]

    def collectives(self, array):
        if is_cupy_array(array):
            if self._device is None:
                self._device = self._make_device()
            return self._device
        return self.host

    # ----- the model's arrays

    def broadcast_parameters(self, params):
        """Every rank gets rank 0's parameter values (in place)."""
        if self.size == 1:
            return
        for p in params:
            self.collectives(p.data).broadcast_(p.data)

    def sum_gradients(self, params, share, touched=None):
        """Replace every rank's gradients by sum over ranks of share * gradient, in place.

        share: this rank's weight, e.g. its share of the batch's targets (the shares sum to 1).
        touched: {id(parameter): row indices}, the only rows of that parameter's gradient that
        any rank can have made non-zero (an embedding's rows of the batch's tokens): those rows
        alone are sent, the others stay zero everywhere. A parameter without a gradient on this
        rank (a rank with no rows) counts as zeros; one without a gradient on every rank keeps
        none, as in one process."""
        if self.size == 1:
            return
        params, touched = list(params), touched or {}
        anywhere = self.host_sum(np.array([p.grad is not None for p in params], dtype=np.int64))
        for p, count in zip(params, anywhere):
            if count and p.grad is None:
                p.grad = get_array_module(p.data).zeros(p.shape, p.dtype)
        parts = [(p, touched.get(id(p))) for p, count in zip(params, anywhere) if count]
        for bucket in buckets(parts):
            p, rows = bucket[0]
            if len(bucket) == 1 and rows is None and writable_flat(p.grad):  # a large one: summed where it is
                grad = p.grad.reshape(-1)
                grad *= share
                self.collectives(grad).allreduce_(grad)
                continue
            pieces = [p.grad if rows is None else p.grad[rows] for p, rows in bucket]
            buffer = self._buffer(pieces[0], sum(piece.size for piece in pieces))
            xp, start = get_array_module(buffer), 0
            for piece in pieces:  # pack, weighted on the way in
                xp.multiply(piece.reshape(-1), share, out=buffer[start:start + piece.size])
                start += piece.size
            self.collectives(buffer).allreduce_(buffer)
            start = 0
            for (p, rows), piece in zip(bucket, pieces):  # copies: the next bucket reuses the buffer
                summed = buffer[start:start + piece.size].reshape(piece.shape)
                if rows is None:
                    p.grad = summed.copy()
                else:
                    p.grad[rows] = summed
                start += piece.size

    def _buffer(self, like, size):
        xp = get_array_module(like)
        key = (like.dtype.str, xp.__name__)
        if key not in self._buffers or self._buffers[key].size < size:
            self._buffers[key] = xp.empty(max(size, BUCKET), like.dtype)
        return self._buffers[key][:size]

    # ----- host numbers: metrics, flags, checks

    def sum(self, array):
        """The elementwise sum over ranks of a host or device array, where it was (with one rank,
        the array itself)."""
        if self.size == 1:
            return array
        total = array.copy()
        self.collectives(total).allreduce_(total)
        return total

    def host_sum(self, array):
        array = np.array(array)
        if self.size > 1:
            self.host.allreduce_(array)
        return array

    def max(self, number):
        """The largest of the ranks' integers (e.g. a signal one of them received)."""
        return int(self.host_max(np.array([number], dtype=np.int64))[0]) if self.size > 1 else number

    def host_max(self, array):
        self.host.allreduce_(array, maximum=True)
        return array

    def check_same(self, text, what):
        """UserError on every rank unless every rank has the same `text` (e.g. a data fingerprint):
        ranks that read different files would silently train on different data."""
        if self.size == 1:
            return
        texts = self.host.allgather(text)
        if len(set(texts)) > 1:
            differ = [rank for rank, other in enumerate(texts) if other != texts[0]]
            raise UserError(f"the ranks do not agree on {what}: rank(s) {', '.join(map(str, differ))} differ from "
                            "rank 0; give every rank the same data and flags")

    def barrier(self):
        if self.size > 1:
            self.host.barrier()

    def fail(self, line, exit_code):
        """End the whole run from this rank: one line naming the rank, then every rank stops
        (MPI_Abort). When every rank fails alike (a bad flag), rank 0 speaks for all: the others
        wait a moment first, so that rank 0's abort usually ends them before they print."""
        if self.size == 1:
            print(line, file=sys.stderr, flush=True)
            sys.exit(exit_code)
        if not self.is_main:
            time.sleep(REPORT_DELAY)
        print(f"error: rank {self.rank} of {self.size}: {line.removeprefix('error: ')}", file=sys.__stderr__,
              flush=True)
        self.host.abort(exit_code)


def buckets(parts):
    """Consecutive groups of (parameter, touched rows) of about BUCKET entries sent; one that
    large alone."""
    groups, current, size = [], [], 0
    for p, rows in parts:
        sent = p.size if rows is None else len(rows) * (p.size // max(p.shape[0], 1))
        if sent >= BUCKET:
            groups.append([(p, rows)])
            continue
        if size + sent > BUCKET and current:
            groups.append(current)
            current, size = [], 0
        current.append((p, rows))
        size += sent
    return groups + ([current] if current else [])


def writable_flat(array):
    """Can the array be summed in place through a flat view of itself?"""
    return array.flags.c_contiguous and array.flags.writeable


# ----- the collectives: MPI for host arrays, NCCL for GPU arrays

class MpiCollectives:
    """In-place collectives on NumPy arrays over an mpi4py communicator."""

    def __init__(self, comm, mpi):
        self.comm, self.mpi = comm, mpi

    def allreduce_(self, array, maximum=False):
        self.comm.Allreduce(self.mpi.IN_PLACE, array, op=self.mpi.MAX if maximum else self.mpi.SUM)

    def broadcast_(self, array):
        self.comm.Bcast(array, root=0)

    def allgather(self, value):
        return self.comm.allgather(value)

    def barrier(self):
        self.comm.Barrier()

    def abort(self, exit_code):
        self.comm.Abort(exit_code)


class NcclCollectives:
    """In-place collectives on CuPy arrays through NCCL, on the current stream. Untested on GPUs."""

    def __init__(self, rank, size, host):
        from cupy.cuda import nccl
        self.nccl = nccl
        unique_id = host.comm.bcast(nccl.get_unique_id() if rank == 0 else None, root=0)
        self.comm = nccl.NcclCommunicator(size, unique_id, rank)
        self.types = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64,
                      np.dtype(np.int64): nccl.NCCL_INT64}

    def allreduce_(self, array):
        import cupy
        self.comm.allReduce(array.data.ptr, array.data.ptr, array.size, self.types[array.dtype], self.nccl.NCCL_SUM,
                            cupy.cuda.get_current_stream().ptr)

    def broadcast_(self, array):
        import cupy
        self.comm.bcast(array.data.ptr, array.size, self.types[array.dtype], 0, cupy.cuda.get_current_stream().ptr)


# ----- this process's world

_world = None


def launched_size():
    """How many processes mpiexec started (1 without mpiexec)."""
    for name in SIZE_VARIABLES:
        if os.environ.get(name):
            return int(os.environ[name])
    return 1


def current():
    """This process's World if one was made, else None."""
    return _world


def world():
    """This process's World, made on the first call: MPI's when mpiexec started several
    processes, otherwise a world of one (no MPI imported)."""
    global _world
    if _world is None:
        _world = World() if launched_size() == 1 else _mpi_world()
    return _world


def _mpi_world():
    try:
        from mpi4py import MPI
    except ImportError:
        raise UserError(f"mpiexec started {launched_size()} processes, but mpi4py is not installed: "
                        'pip install ".[mpi]" (or pip install mpi4py mpich)') from None
    comm = MPI.COMM_WORLD
    host = MpiCollectives(comm, MPI)
    rank, size = comm.Get_rank(), comm.Get_size()
    return World(rank, size, host, lambda: NcclCollectives(rank, size, host))


def quiet_other_ranks(world):
    """Rank 0 alone prints: the others' stdout and stderr go nowhere (their error lines go to
    sys.__stderr__, see World.fail)."""
    if not world.is_main:
        sys.stdout = sys.stderr = open(os.devnull, "w")


class DistributedOptimizer:
    """An optimizer whose step() first sums the ranks' gradients, weighted by `share` (set by the
    loop for each batch), so that a step function written for one process (zero, forward,
    backward, step: minisum.training.lm_train_step) trains every rank alike. Horovod's idea."""

    def __init__(self, optimizer, world):
        self.optimizer, self.world = optimizer, world
        self.share, self.touched = 1.0, None  # for the next step (see World.sum_gradients)

    def zero_grad(self):
        self.optimizer.zero_grad()

    def step(self):
        self.world.sum_gradients(self.optimizer.params, self.share, self.touched)
        self.optimizer.step()

    def __getattr__(self, name):  # to read the rest (step_count, state_dict, ...) from the optimizer
        return getattr(self.optimizer, name)
