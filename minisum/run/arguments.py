"""The command-line argument types the three training scripts share.

Each type turns a flag's text into a value or refuses it in one line, so that every number
a script trains with is checked before anything is read or written: finite, and in range.

    p.add_argument("--lr", type=positive(float))
    p.add_argument("--seed", type=SEED)
"""
import argparse
import math
import os

from minisum.errors import UserError


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are UserErrors (one line, like every other bad input), and which
    records the flags given explicitly in `args.explicit`: --resume takes the others from the run."""

    def error(self, message):
        raise UserError(f"{message} (see --help)")

    def parse_args(self, args=None, namespace=None):
        unset = object()
        probe = argparse.Namespace(**{action.dest: unset for action in self._actions})
        super().parse_args(args, probe)  # defaults are not applied over attributes already present
        parsed = super().parse_args(args, namespace)
        parsed.explicit = {dest for dest, value in vars(probe).items() if value is not unset}
        return parsed


def _number(kind, text):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def at_least(low, kind=int):
    """A number >= low."""
    def parse(text):
        value = _number(kind, text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {text}")
        return value
    parse.__name__ = f"{kind.__name__} >= {low}"
    return parse


def positive(kind):
    """A number > 0 (a rate, a size, a penalty)."""
    def parse(text):
        value = _number(kind, text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    parse.__name__ = f"positive {kind.__name__}"
    return parse


def between(low, high, closed_low=True):
    """A float in [low, high) (or (low, high) when closed_low is False)."""
    def parse(text):
        value = _number(float, text)
        if not (low <= value if closed_low else low < value) or not value < high:
            raise argparse.ArgumentTypeError(f"must lie in {'[' if closed_low else '('}{low}, {high}), got {text}")
        return value
    parse.__name__ = "fraction"
    return parse


SEED = at_least(0)  # NumPy's generators refuse negative seeds
NON_NEGATIVE = at_least(0.0, float)


def names(choices):
    """A comma-separated list of distinct names among `choices`."""
    def parse(text):
        chosen = [name.strip() for name in text.split(",") if name.strip()]
        unknown = [name for name in chosen if name not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(map(repr, unknown))}; "
                                             f"choose from {', '.join(choices)}")
        if not chosen or len(set(chosen)) != len(chosen):
            raise argparse.ArgumentTypeError(f"{text!r}: give distinct names among {', '.join(choices)}, "
                                             "comma-separated")
        return chosen
    parse.__name__ = "names"
    return parse


def add_run_flags(parser, default_out_dir, out_dir_help="the run's folder: results, checkpoints, figures"):
    """--out-dir, --resume, --overwrite and --device, the same in every script."""
    parser.add_argument("--out-dir", default=default_out_dir, help=out_dir_help + " (default: %(default)s)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out-dir with its own flags "
                        "(--epochs may grow)")
    parser.add_argument("--overwrite", action="store_true", help="start afresh in an --out-dir that holds a run: "
                        "its files are moved aside into a subfolder, never deleted")
    parser.add_argument("--device", choices=("cpu", "gpu"), help="gpu needs CuPy (default: $MINISUM_DEVICE, else cpu)")


def device(args):
    """--device, else the environment variable MINISUM_DEVICE, else cpu."""
    if args.device:
        return args.device
    chosen = os.environ.get("MINISUM_DEVICE", "cpu").lower()
    if chosen not in ("cpu", "gpu", "cuda"):
        raise UserError(f"MINISUM_DEVICE={chosen!r} is not a device: set it to cpu or gpu, or give --device")
    return "cpu" if chosen == "cpu" else "gpu"
