"""Write a file atomically and durably: all of it or, after a crash, the previous version untouched.

The data goes to a temporary file in the same folder, which is flushed to the disk (fsync)
and then renamed over the target (a rename within one file system is atomic); the folder is
then flushed too, so that the rename itself survives an OS crash or a power loss, not only
a killed process.
"""
import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_open(path, mode="w", **kwargs):
    """`with atomic_open(path, "wb") as f: ...` writes `path` only if the block succeeds."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes it private (0600); results are meant to be shared
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())  # the data on the disk before the name points at it
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    fsync_folder(folder)


def fsync_folder(folder):
    """Flush a folder's entries (a rename in it) to the disk; a no-op where folders cannot be
    opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
