"""Move a language-model checkpoint between minisum and PyTorch, for training beyond one machine.

    python -m minisum.torch_convert runs/lm/hybrid.npz hybrid.pt    # minisum -> PyTorch
    python -m minisum.torch_convert hybrid.pt hybrid.npz            # PyTorch -> minisum

The direction follows the input's suffix (.npz is minisum's, .pt or .pth PyTorch's). The
.pt file is a dict, read with `torch.load(path)`:

    "model"   the state dict of minisum.torch_reference.TorchLanguageModel (strict=True loads it)
    "config"  the minisum checkpoint's config; TorchLanguageModel(**config["model"]) builds the model
    "step"    the optimizer steps taken so far

The parameter names are the same on both sides and the arrays are copied bit for bit, so a
round trip changes nothing. The optimizer's state stays behind: training in PyTorch starts
a fresh optimizer. docs/to_torch.md shows how to continue training with torchrun and DDP.
Needs PyTorch, which minisum never depends on.
"""
import os

from minisum.atomic import atomic_open
from minisum.checkpoint import read_checkpoint, save_checkpoint
from minisum.errors import UserError
from minisum.run.arguments import ArgumentParser
from minisum.run.runtime import run_main

TORCH_SUFFIXES = (".pt", ".pth")


def to_torch(npz_path, pt_path):
    """Write the language model of minisum checkpoint `npz_path` as a PyTorch file; returns its parameter count."""
    torch = _import_torch()
    from minisum.torch_reference import TorchLanguageModel

    ckpt = read_checkpoint(npz_path)
    model_config = _model_config(ckpt["config"], npz_path)
    state = {name: torch.from_numpy(array) for name, array in ckpt["model"].items()}
    try:
        TorchLanguageModel(**model_config).load_state_dict(state, strict=True)  # refuse to write what would not load
    except (RuntimeError, TypeError, KeyError) as err:
        raise UserError(f"{npz_path} does not hold a language model PyTorch can load: {err}") from None
    with atomic_open(pt_path, "wb") as f:
        torch.save({"model": state, "config": ckpt["config"], "step": ckpt["step"]}, f)
    return sum(array.size for array in ckpt["model"].values())


def from_torch(pt_path, npz_path):
    """Write the PyTorch file `pt_path` (as to_torch writes it) as a minisum checkpoint; returns its parameter count."""
    torch = _import_torch()
    from minisum.models import LanguageModel

    try:
        saved = torch.load(pt_path, map_location="cpu", weights_only=True)
    except Exception:  # torch.load fails on a stranger's bytes in many ways, all meaning "unreadable"
        raise UserError(f"{pt_path} is unreadable: not a file that torch.save wrote, or truncated") from None
    if not isinstance(saved, dict) or "model" not in saved or "config" not in saved:
        raise UserError(f"{pt_path} is not a dict with 'model' and 'config': save "
                        "{'model': model.state_dict(), 'config': config} as docs/to_torch.md shows")
    model_config = _model_config(saved["config"], pt_path)
    # a state dict saved from the DDP wrapper instead of the model has every name prefixed "module."
    state = {name.removeprefix("module."): tensor.detach().cpu().float().numpy()
             for name, tensor in saved["model"].items()}
    model = LanguageModel(**model_config)
    try:
        model.load_state_dict(state)
    except ValueError as err:
        raise UserError(f"{pt_path} does not fit LanguageModel(**config['model']): {err}") from None
    save_checkpoint(npz_path, model, config=saved["config"], step=int(saved.get("step", 0)))
    return model.num_parameters()


def _model_config(config, path):
    if not isinstance(config.get("model"), dict) or "vocab_size" not in config["model"]:
        raise UserError(f"{path} is not a language-model checkpoint: its config has no model settings "
                        "(vocab_size, d_model, ...); only train_lm.py's checkpoints convert")
    return config["model"]


def _import_torch():
    try:
        import torch
    except ImportError:
        raise UserError("converting needs PyTorch, which minisum does not install: pip install torch") from None
    return torch


def main(argv=None):
    parser = ArgumentParser(prog="python -m minisum.torch_convert", description=__doc__.split("\n\n")[0],
                            epilog="The direction follows the input's suffix: .npz (minisum) or .pt/.pth (PyTorch).")
    parser.add_argument("source", help="a minisum checkpoint (.npz) or a PyTorch file (.pt, .pth)")
    parser.add_argument("target", help="the file to write (.pt for PyTorch, .npz for minisum)")
    parser.add_argument("--force", action="store_true", help="overwrite the target if it exists")
    args = parser.parse_args(argv)
    to_pytorch = args.source.endswith(".npz")
    if not to_pytorch and not args.source.endswith(TORCH_SUFFIXES):
        raise UserError(f"{args.source}: the source must end in .npz (minisum) or .pt/.pth (PyTorch)")
    if not args.target.endswith(TORCH_SUFFIXES if to_pytorch else ".npz"):
        raise UserError(f"{args.target}: converting {args.source} writes a "
                        f"{'PyTorch file: name it .pt' if to_pytorch else 'minisum checkpoint: name it .npz'}")
    if not os.path.exists(args.source):
        raise UserError(f"{args.source} does not exist")
    if os.path.exists(args.target) and not args.force:
        raise UserError(f"{args.target} exists: choose another name or pass --force to overwrite it")
    if to_pytorch:
        count = to_torch(args.source, args.target)
        print(f"wrote {args.target}: {count:,} parameters; in PyTorch, load it with\n"
              "    ckpt = torch.load(path)\n"
              "    model = TorchLanguageModel(**ckpt['config']['model'])  # from minisum.torch_reference\n"
              "    model.load_state_dict(ckpt['model'], strict=True)")
    else:
        count = from_torch(args.source, args.target)
        print(f"wrote {args.target}: {count:,} parameters, a minisum checkpoint")

if __name__ == "__main__":
    run_main(main)
