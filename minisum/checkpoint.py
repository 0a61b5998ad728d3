"""Checkpoints: model, optimizer state, config and step in one .npz file.

Written atomically (a temporary file in the same folder, then a rename), so a crash
mid-write leaves the previous checkpoint intact. Read with allow_pickle=False: the config
is stored as JSON text, so a checkpoint from a stranger cannot run code.
"""
import json
import os
import zipfile

import numpy as np

from minisum.atomic import atomic_open
from minisum.backend import to_numpy
from minisum.errors import UserError


def save_checkpoint(path, model, optimizer=None, config=None, step=0, extra=None):
    """Write everything needed to resume: model/*, optim/*, config (JSON), step, extra (JSON)."""
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    if optimizer is not None:
        arrays.update({f"optim/{k}": to_numpy(v) if hasattr(v, "shape") else np.asarray(v)
                       for k, v in optimizer.state_dict().items()})
    arrays["config"] = np.asarray(json.dumps(config or {}))
    arrays["extra"] = np.asarray(json.dumps(extra or {}))
    arrays["step"] = np.asarray(step)
    with atomic_open(path, "wb") as f:
        np.savez(f, **arrays)


def read_checkpoint(path):
    """The raw contents: {"model": {...}, "optim": {...}, "config": dict, "extra": dict, "step": int}."""
    if not os.path.exists(path):
        raise UserError(f"checkpoint {path} does not exist")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):  # a plain .npy array
            raise ValueError("it holds a single array, not an .npz archive")
        with data:
            arrays = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise UserError(f"checkpoint {path} is unreadable (truncated or not a minisum checkpoint): {err}") from None
    for key in ("config", "step"):
        if key not in arrays:
            raise UserError(f"checkpoint {path} has no {key!r} entry: not a minisum checkpoint")
    return {
        "model": {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")},
        "optim": {k[len("optim/"):]: v for k, v in arrays.items() if k.startswith("optim/")},
        "config": json.loads(str(arrays["config"])),
        "extra": json.loads(str(arrays["extra"])) if "extra" in arrays else {},
        "step": int(arrays["step"]),
    }


def load_checkpoint(path, model, optimizer=None):
    """Restore model (and optimizer) from `path`; returns the checkpoint's contents."""
    ckpt = read_checkpoint(path)
    try:
        model.load_state_dict(ckpt["model"])
        if optimizer is not None and ckpt["optim"]:
            optimizer.load_state_dict(ckpt["optim"])
    except ValueError as err:
        raise UserError(f"checkpoint {path} does not fit this model: {err}") from None
    return ckpt
