"""One invocation of a training script, behind one object: its flags, its folder, this process's
rank in the world of ranks, and the stop signals.

    run = Run(args, RunFolder(out_dir, RUN_FILES))  once, from the parsed arguments
    run.claim()                   before any data is read: may the folder be this run's?
    run.open(progress)            every rank has checked everything: rank 0 makes the folder
    with run:                     Ctrl-C and SIGTERM are caught from here on
        if run.stopping(): ...    after each batch: a signal any rank received (all agree)
        run.checkpoint(...)       rank 0 writes a checkpoint
        run.write_json(...)       rank 0 writes results
        raise run.stopped()       exit 130 or 143 (runtime.run_main); stopped_at(...) says where first

Every rank runs the same code; what only rank 0 may do (write, print) the run does or skips.
"""
import sys

from minisum import distributed
from minisum.run import runtime
from minisum.run.progress import save_progress
from minisum.run.signals import StopRequest


class Run:
    def __init__(self, args, folder, world=None):
        self.args, self.folder = args, folder
        self.world = world or distributed.world()
        self.stop = StopRequest()

    @property
    def path(self):
        return self.folder.path

    @property
    def is_main(self):
        """Rank 0: the one that prints and writes."""
        return self.world.is_main

    def claim(self):
        self.folder.claim(self.args)

    def open(self, progress=None):
        """Every rank has passed every check and resumes every model from the same point
        (`progress`: {model name: its Progress, None for a fresh start}): from here on rank 0
        writes the folder. A rank that read other checkpoints (a folder not shared by every
        machine) would train out of step with the others, or wait for them forever."""
        points = [f"{name} {p.done} {p.meter().batches}" if p else f"{name} new"
                  for name, p in (progress or {}).items()]  # epochs and batches done
        self.world.check_same(", ".join(points), f"the checkpoints in {self.path} (a folder every rank must read)")
        self.world.barrier()
        if self.is_main:
            self.folder.open(self.args)

    def __enter__(self):
        self.stop.__enter__()
        return self

    def __exit__(self, *exc):
        self.stop.__exit__(*exc)

    def stopping(self):
        """The signal a rank received (None: none), the same on every rank; every rank calls
        this at the same point of the loop."""
        return self.stop.agreed(self.world)

    def stopped(self):
        return self.stop.stopped()

    def stopped_at(self, name, epoch, batches, path):
        """The line saying where model `name` stopped and how to continue, then the Stopped to raise.
        batches: those done in the epoch, None when the whole epoch was."""
        where = f"after epoch {epoch}" if batches is None else f"in epoch {epoch} after {batches} batches"
        print(f"{name}: stopped {where}; checkpoint {path}; continue with --resume", file=sys.stderr)
        return self.stopped()

    def checkpoint(self, path, model, optimizer, config, progress):
        if self.is_main:
            save_progress(path, model, optimizer, config, progress)

    def write_json(self, path, data):
        if self.is_main:
            runtime.write_json(path, data)
