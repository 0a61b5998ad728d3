"""Checkpoints: model, optimizer state, config and step in one .npz file.

Written atomically (a temporary file in the same folder, then a rename), so a crash
mid-write leaves the previous checkpoint intact. Read with allow_pickle=False: the config
is stored as JSON text, so a checkpoint from a stranger cannot run code. Every field a
script reads from it is read inside `fields_of(path)`, which turns a missing or wrongly
typed field into one line instead of a traceback.
"""
import contextlib
import hashlib
import json
import os
import zipfile

import numpy as np

from minisum.atomic import atomic_open
from minisum.backend import to_numpy
from minisum.errors import UserError


def save_checkpoint(path, model, optimizer=None, config=None, step=0, extra=None, arrays=None):
    """Write everything needed to resume: model/*, optim/*, config (JSON), step, extra (JSON),
    and any further named `arrays` (arrays/*, e.g. the best weights so far)."""
    entries = {f"model/{k}": v for k, v in model.state_dict().items()}
    if optimizer is not None:
        entries.update({f"optim/{k}": to_numpy(v) if hasattr(v, "shape") else np.asarray(v)
                        for k, v in optimizer.state_dict().items()})
    entries.update({f"arrays/{k}": to_numpy(v) for k, v in (arrays or {}).items()})
    entries["config"] = np.asarray(json.dumps(config or {}))
    entries["extra"] = np.asarray(json.dumps(extra or {}))
    entries["step"] = np.asarray(step)
    with atomic_open(path, "wb") as f:
        np.savez(f, **entries)


def read_checkpoint(path):
    """The raw contents: {"model": {...}, "optim": {...}, "arrays": {...}, "config": dict, "extra": dict,
    "step": int}."""
    if not os.path.exists(path):
        raise UserError(f"checkpoint {path} does not exist")
    unreadable = f"checkpoint {path} is unreadable (truncated or not a minisum checkpoint)"
    if not zipfile.is_zipfile(path):  # else np.load takes any other file for a pickle and advises loading it unsafely
        raise UserError(f"{unreadable}: it is not an .npz archive")
    try:
        with np.load(path, allow_pickle=False) as data:
            entries = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise UserError(f"{unreadable}: {err}") from None
    for key in ("config", "step"):
        if key not in entries:
            raise UserError(f"checkpoint {path} has no {key!r} entry: not a minisum checkpoint")
    with fields_of(path):
        config = json.loads(str(entries["config"]))
        extra = json.loads(str(entries["extra"])) if "extra" in entries else {}
        if not isinstance(config, dict) or not isinstance(extra, dict):
            raise TypeError("its config and extra must be JSON objects")
        return {
            "model": _prefixed(entries, "model/"),
            "optim": _prefixed(entries, "optim/"),
            "arrays": _prefixed(entries, "arrays/"),
            "config": config,
            "extra": extra,
            "step": int(entries["step"]),
        }


def _prefixed(entries, prefix):
    return {k[len(prefix):]: v for k, v in entries.items() if k.startswith(prefix)}


@contextlib.contextmanager
def fields_of(path):
    """Reading fields of checkpoint `path` inside this block: a missing or malformed field is a
    UserError naming the checkpoint, never a traceback."""
    try:
        yield
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as err:
        what = f"no field {err}" if isinstance(err, KeyError) else str(err)
        raise UserError(f"checkpoint {path} is malformed ({what}): not a checkpoint of this script, or damaged; "
                        "use another checkpoint or train again") from None


def load_checkpoint(path, model, optimizer=None):
    """Restore model (and optimizer) from `path`; returns the checkpoint's contents."""
    ckpt = read_checkpoint(path)
    try:
        model.load_state_dict(ckpt["model"])
        if optimizer is not None and ckpt["optim"]:
            optimizer.load_state_dict(ckpt["optim"])
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"checkpoint {path} does not fit this model: {err}") from None
    return ckpt


def fingerprint(data):
    """A short hash of a tokenizer's or vocabulary's text (or bytes), recorded in each checkpoint:
    a model is only meaningful with the ids it was trained on."""
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()[:16]


def check_fingerprint(ckpt, path, expected, what):
    """One line when checkpoint `path` was trained with another tokenizer or vocabulary."""
    saved = ckpt["config"].get("fingerprint")
    if saved is None:
        raise UserError(f"checkpoint {path} records no {what} fingerprint (made before checkpoints had one, or "
                        f"elsewhere), so it cannot be checked against this {what}: train again to use it")
    if saved != expected:
        raise UserError(f"checkpoint {path} was trained with another {what} (fingerprint {saved}, this one "
                        f"{expected}): use the {what} of its run, or train again")
