"""Ctrl-C (SIGINT) and `kill` / a scheduler's SIGTERM stop a run at the next batch boundary.

The handler only sets a flag; training reads it between batches, saves a checkpoint that
never holds half an update, and raises `Stopped`, which `runtime.run_main` turns into the
shell's exit status for that signal (130 for SIGINT, 143 for SIGTERM). A second signal
stops at once. With several ranks, `agreed(world)` is the signal any rank received, read by
every rank at the same batch, so that all of them stop together after the same batch.
"""
import signal
import sys

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Stopped(KeyboardInterrupt):
    """The run saved its state and stops because of signal `signum`."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum


class StopRequest:
    """with StopRequest() as stop: ... if stop.signum: save, then raise stop.stopped()"""

    signum = None  # the signal this process received
    agreed_signum = None  # the one every rank acts on, from agreed()

    def __enter__(self):
        self.previous = {sig: signal.signal(sig, self._handle) for sig in HANDLED}
        return self

    def _handle(self, signum, frame):
        self.signum = signum
        signal.signal(signum, self.previous[signum])  # the second one is not caught
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        print(f"\n{name}: saving a checkpoint after this batch (again to quit at once)", file=sys.stderr)

    def agreed(self, world):
        """The signal a rank received (None: none), the same on every rank: each calls this at the
        same point of the loop."""
        self.agreed_signum = world.max(self.signum or 0) or None
        return self.agreed_signum

    def stopped(self):
        return Stopped(self.agreed_signum or self.signum)

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
