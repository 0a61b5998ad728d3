"""A run folder belongs to its run.

A script claims its --out-dir after checking its flags and before it reads any data,
and writes nothing yet:
- the folder must be creatable and writable: tried (a temporary folder made and removed), not guessed;
- a folder that holds another run's files is refused without --resume, in one line naming
  them and the choices: --resume, another --out-dir, or --overwrite, which moves them into
  a subfolder `earlier-run-N` (nothing is ever deleted);
- on --resume, `resumed()` parses the command line again with the run's own flags (its
  run.json) as the defaults: flags not given take the run's values, flags given must agree
  (except those the script lets change, like --epochs).
"""
import fnmatch
import json
import os
import tempfile
from pathlib import Path

from minisum.errors import UserError
from minisum.run.runtime import write_json

FLAGS_FILE = "run.json"
# Never taken from the saved run: what this invocation asks for, and where.
NOT_SAVED = {"resume", "overwrite", "out_dir", "device", "explicit", "analyze", "generate", "checkpoint",
             "max_new_tokens", "temperature", "top_k"}


def flag(key):
    return "--" + key.replace("_", "-")


class RunFolder:
    """The folder of one run. `patterns`: the names (fnmatch patterns) of the files a run of
    this script writes there; anything else in the folder is the user's and is left alone."""

    def __init__(self, path, patterns):
        self.path, self.patterns = Path(path), (FLAGS_FILE, *patterns)

    def run_files(self):
        if not self.path.is_dir():
            return []
        return sorted(entry.name for entry in self.path.iterdir()
                      if entry.is_file() and any(fnmatch.fnmatch(entry.name, p) for p in self.patterns))

    def claim(self, args):
        """Check, before anything is written, that the folder can be this run's."""
        if args.resume and args.overwrite:
            raise UserError("--resume continues the run in --out-dir and --overwrite moves it aside: give one of them")
        self._check_writable()
        found = self.run_files()
        if found and not args.resume and not args.overwrite:
            shown = ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
            raise UserError(f"--out-dir {self.path} holds another run ({shown}): continue it with --resume, "
                            "choose another --out-dir, or add --overwrite to move its files aside")

    def _check_writable(self):
        existing = self.path
        while not existing.exists():  # the nearest folder that exists is where ours would be made
            existing = existing.parent
        if not existing.is_dir():
            raise UserError(f"--out-dir {self.path}: {existing} exists and is not a folder")
        try:
            with tempfile.TemporaryDirectory(dir=existing, prefix=".minisum-write-test-"):
                pass
        except OSError as err:
            where = "write in" if existing == self.path else f"create {self.path} in"
            raise UserError(f"--out-dir: cannot {where} {existing} ({err.strerror}); "
                            "choose another --out-dir") from None

    def open(self, args):
        """Make the folder, move an earlier run aside on --overwrite, and record the run's flags
        (once, when it starts: --resume keeps them)."""
        self.path.mkdir(parents=True, exist_ok=True)
        if args.overwrite and not args.resume:
            self._move_aside()
        if not args.resume:
            write_json(self.path / FLAGS_FILE, {"flags": run_flags(args)})

    def earlier_records(self, args):
        """On --resume, the models' records in the run's results.json: models not named this
        time keep theirs."""
        path = self.path / "results.json"
        if not args.resume or not path.is_file():
            return {}
        try:
            return dict(json.loads(path.read_text(encoding="utf-8"))["models"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UserError(f"cannot resume: {path} is unreadable ({err}); move it away to start its results "
                            "afresh") from None

    def _move_aside(self):
        found = self.run_files()
        if not found:
            return
        number = 1
        while (self.path / f"earlier-run-{number}").exists():
            number += 1
        aside = self.path / f"earlier-run-{number}"
        aside.mkdir()
        for name in found:
            os.replace(self.path / name, aside / name)
        print(f"--overwrite: the earlier run's files are now in {aside}")


def run_flags(args):
    """The flags that define a run: what run.json, results.json and its checkpoints record."""
    return {key: value for key, value in vars(args).items() if key not in NOT_SAVED}


def resumed(parser, argv, args, path, may_change):
    """On --resume: `argv` parsed again with the flags saved in the run folder `path` as the
    defaults, so that every flag not given is the run's own, checked by the same types. A flag
    given explicitly must agree with the run's, unless it is in `may_change`."""
    saved = read_flags(path)
    parser.set_defaults(**{key: _as_text(value) for key, value in saved.items()
                           if key not in NOT_SAVED and hasattr(args, key)})
    try:
        run = parser.parse_args([])  # the run's own flags, through the types
    except UserError as err:
        raise UserError(f"{path / FLAGS_FILE} holds a flag this script refuses ({err}); "
                        "run without --resume in another --out-dir") from None
    for key in sorted(args.explicit - set(may_change) - NOT_SAVED):
        if key in saved and getattr(args, key) != getattr(run, key):
            raise UserError(f"the run in {path} was made with {flag(key)} {_show(getattr(run, key))}, not "
                            f"{_show(getattr(args, key))}: drop {flag(key)} to continue it, or start a new run in "
                            "another --out-dir")
    return parser.parse_args(argv)


def read_flags(path):
    """The flags saved in run folder `path`."""
    flags_file = path / FLAGS_FILE
    if not flags_file.is_file():
        raise UserError(f"nothing to resume in {path}: it has no {FLAGS_FILE} (the flags a run saves when it "
                        "starts); run without --resume")
    try:
        saved = json.loads(flags_file.read_text(encoding="utf-8"))
        if not isinstance(saved, dict) or not isinstance(saved.get("flags"), dict):
            raise ValueError("no 'flags' object")
    except (OSError, ValueError) as err:
        raise UserError(f"{flags_file} is unreadable ({err}): not the flags of a run; run without --resume "
                        "in another --out-dir") from None
    return saved["flags"]


def _as_text(value):
    """A saved flag as the command line would give it (argparse applies the flag's type to text defaults)."""
    if isinstance(value, list):
        return ",".join(map(str, value))
    return value if value is None or isinstance(value, bool) else str(value)


def _show(value):
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)
