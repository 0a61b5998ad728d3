"""What a training script's checkpoint holds beside the weights, so that --resume continues
bit-identically: the model's record so far (its part of results.json), the batch-order
generator as it was when the current epoch began (a resumed run draws that epoch's order
again and skips the batches done), the running sums of an interrupted epoch, the host
generator of dropout and initialisation, and the fingerprint of the tokenizer or vocabulary.

    save_progress(path, model, optimizer, config, progress)    after every epoch, and on a signal
    progress = read_progress(path, config, fixed)              before the first batch (None: no checkpoint)
    begin(name, path, model, optimizer, batch_rng, progress, epochs)
                                                               when that model's turn comes: False if it is done
    restore(path, model, optimizer, progress)                  (begin's part that puts the state back)
"""
from dataclasses import dataclass, field

import numpy as np

from minisum import backend
from minisum.checkpoint import check_fingerprint, fields_of, load_checkpoint, read_checkpoint, save_checkpoint
from minisum.errors import UserError
from minisum.run.folder import flag
from minisum.run.meter import Meter


@dataclass
class Progress:
    record: dict  # the model's part of results.json, with its list of finished epochs under `epochs_key`
    epoch_rng: dict  # the batch-order generator's state when the current epoch began
    partial: dict | None = None  # Meter.state() of an interrupted epoch; None at an epoch's end
    arrays: dict = field(default_factory=dict)  # further arrays to keep (e.g. the best weights so far)
    state: dict = field(default_factory=dict)  # further JSON state (e.g. the callbacks')
    host_rng: dict | None = None  # dropout's and initialisation's generator at the checkpoint
    epochs_key: str = "epochs"
    from_checkpoint: bool = False  # read from a checkpoint (by read_progress), not a fresh start

    @property
    def done(self):
        """Epochs completed."""
        return len(self.record[self.epochs_key])

    def meter(self, world=None):
        return Meter(self.partial, world)


def save_progress(path, model, optimizer, config, progress):
    """One atomic checkpoint; `config` holds {"model": ..., "run": flags, "fingerprint": ...}."""
    extra = {"record": progress.record, "rng": progress.epoch_rng, "partial": progress.partial,
             "host_rng": backend.host_rng().bit_generator.state, "state": progress.state}
    save_checkpoint(path, model, optimizer, config, step=optimizer.step_count, extra=extra, arrays=progress.arrays)


def read_progress(path, config, fixed, epochs_key="epochs"):
    """The Progress saved in checkpoint `path` (None if there is none), after checking that the
    same run made it: the same model, the flags in `fixed`, the same tokenizer or vocabulary."""
    if not path.is_file():
        return None
    ckpt = read_checkpoint(path)
    with fields_of(path):
        saved = ckpt["config"]["run"]
        changed = [key for key in fixed if _plain(saved[key]) != _plain(config["run"][key])]
    if changed:
        was = ", ".join(f"{flag(key)} {saved[key]}" for key in changed)
        now = ", ".join(str(config["run"][key]) for key in changed)
        raise UserError(f"{path} was trained with {was}, this run asks for {now}: "
                        "give the same flags to --resume, or use another --out-dir")
    check_fingerprint(ckpt, path, config["fingerprint"], config["fingerprint_of"])
    with fields_of(path):
        if ckpt["config"]["model"] != config["model"]:
            raise ValueError(f"its model {ckpt['config']['model']} is not this run's {config['model']}")
        extra = ckpt["extra"]
        progress = Progress(record=dict(extra["record"]), epoch_rng=extra["rng"], partial=extra["partial"],
                            arrays=ckpt["arrays"], state=dict(extra["state"]), host_rng=extra["host_rng"],
                            epochs_key=epochs_key, from_checkpoint=True)
        np.random.default_rng().bit_generator.state = progress.epoch_rng  # each refuses a malformed state
        np.random.default_rng().bit_generator.state = progress.host_rng
        Meter(None if progress.partial is None else dict(progress.partial))
        if not isinstance(progress.record[epochs_key], list):
            raise TypeError(f"its record's {epochs_key!r} is not a list")
    return progress


def restore(path, model, optimizer, progress):
    """Put the checkpoint's weights, optimizer state and host generator back."""
    load_checkpoint(path, model, optimizer)
    backend.host_rng().bit_generator.state = progress.host_rng


def begin(name, path, model, optimizer, batch_rng, progress, epochs):
    """Where a model's training starts. False (status "finished") when its checkpoint already
    has every epoch; otherwise True, with the checkpoint's weights, optimizer state and batch
    order put back when there is one, so that training continues where it stopped."""
    if progress.done >= epochs:
        progress.record["status"] = "finished"
        print(f"{name}: finished ({progress.done} epochs), nothing to resume")
        return False
    if progress.from_checkpoint:
        restore(path, model, optimizer, progress)
        batch_rng.bit_generator.state = progress.epoch_rng
    return True


def _plain(value):
    return list(value) if isinstance(value, tuple) else value
