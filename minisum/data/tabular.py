"""Tables for the multimodal regression (docs/paper.md section 3): a text column, numeric
columns and a numeric target, from a local file or from Civil Comments on the hub.

`split_60_20_20` reproduces the reference's two scikit-learn `train_test_split` calls.
"""
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minisum.data.hub import first_line, import_datasets
from minisum.errors import UserError

CIVIL_COMMENTS_HUB_ID = "google/civil_comments"
TEXT_COL = "text"
NUMERIC_COLS = ("toxicity", "severe_toxicity", "obscene", "threat")
TARGET_COL = "identity_attack"
PAPER_ROWS = 10000
MIN_ROWS = 10  # fewer cannot be split 60/20/20 into parts worth training and measuring on
_FORMATS = {".csv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


@dataclass
class TableData:
    texts: list
    numeric: np.ndarray  # (N, len(numeric_cols)) float64
    target: np.ndarray  # (N,) float64
    numeric_cols: tuple
    target_col: str
    source: str  # the file or hub id read
    note: str = ""  # deviations and dropped rows, "" if none


def load_table(path, text_col=TEXT_COL, numeric_cols=NUMERIC_COLS, target_col=TARGET_COL, rows=None):
    """The first `rows` rows (all when None) of a local CSV, JSON Lines or Parquet file
    (optionally .gz for CSV and JSON), read with `datasets.load_dataset`."""
    path = Path(path)
    name = path.name.lower().removesuffix(".gz")
    kind = next((kind for suffix, kind in _FORMATS.items() if name.endswith(suffix)), None)
    if kind is None:
        raise UserError(f"{path}: unknown table format; use .csv, .jsonl or .parquet")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    datasets = import_datasets()

    try:
        table = datasets.load_dataset(kind, data_files=str(path), split=_hf_split(rows))
    except Exception as error:  # the parser's message names the line when it knows it
        raise UserError(f"{path}: cannot read it as {kind} ({first_line(error)})") from None
    return table_from_columns(_select(table, [text_col, *numeric_cols, target_col], str(path)),
                              text_col, numeric_cols, target_col, source=str(path))


def load_civil_comments(rows=PAPER_ROWS):
    """The first `rows` rows of Civil Comments' train split from the hub, with the
    paper's columns."""
    datasets = import_datasets()

    try:
        table = datasets.load_dataset(CIVIL_COMMENTS_HUB_ID, split=_hf_split(rows))
    except Exception as error:  # offline, unknown id, network: all mean "use a local file"
        raise UserError(f"could not fetch {CIVIL_COMMENTS_HUB_ID} from the Hugging Face hub ({first_line(error)}); "
                        f"pass --data-file with a CSV/JSONL/Parquet file that has columns {TEXT_COL}, "
                        f"{', '.join(NUMERIC_COLS)}, {TARGET_COL}") from None
    columns = _select(table, [TEXT_COL, *NUMERIC_COLS, TARGET_COL], CIVIL_COMMENTS_HUB_ID)
    data = table_from_columns(columns, TEXT_COL, NUMERIC_COLS, TARGET_COL, source=CIVIL_COMMENTS_HUB_ID)
    hub_note = "Civil Comments from the HF hub; the reference read TFDS civil_comments, whose row order may differ"
    data.note = "; ".join(n for n in (hub_note, data.note) if n)
    return data


def _hf_split(rows):
    if rows is None:
        return "train"
    if rows < 1:
        raise UserError(f"rows must be at least 1, got {rows}")
    return f"train[:{rows}]"


def _select(table, names, source):
    """{name: list} of the wanted columns of a `datasets.Dataset`."""
    _require_columns(table.column_names, names, source)
    return {name: list(table[name]) for name in names}


def _require_columns(found, wanted, source):
    missing = [name for name in wanted if name not in found]
    if missing:
        raise UserError(f"{source}: missing column(s) {', '.join(missing)}; "
                        f"the columns found are {', '.join(found)}")


def table_from_columns(columns, text_col, numeric_cols, target_col, source):
    """TableData from a dict {column name: list of values}. Rows whose numeric or target
    value is missing, NaN, infinite or not a number are dropped, with a warning on
    stderr and in `note`."""
    numeric_cols = tuple(numeric_cols)
    _require_columns(list(columns), [text_col, *numeric_cols, target_col], source)
    values = np.stack([_to_floats(columns[name]) for name in (*numeric_cols, target_col)], axis=1)
    good = np.isfinite(values).all(axis=1)
    texts = ["" if t is None else str(t) for t in columns[text_col]]
    note = ""
    if not good.all():
        bad_rows = np.flatnonzero(~good) + 1
        shown = ", ".join(str(r) for r in bad_rows[:5]) + (", ..." if len(bad_rows) > 5 else "")
        note = (f"dropped {len(bad_rows)} of {len(good)} rows with a missing or non-numeric value "
                f"in {', '.join((*numeric_cols, target_col))} (data rows {shown}, counting from 1)")
        print(f"warning: {source}: {note}", file=sys.stderr)
        texts = [t for t, keep in zip(texts, good) if keep]
        values = values[good]
    if len(texts) < MIN_ROWS:
        raise UserError(f"{source}: {len(texts)} usable rows, at least {MIN_ROWS} are needed")
    return TableData(texts, values[:, :-1], values[:, -1], numeric_cols, target_col, source, note)


def _to_floats(column):
    out = np.full(len(column), np.nan)
    for i, value in enumerate(column):
        try:
            out[i] = float(value)
        except (TypeError, ValueError):  # None or text: stays NaN, so the row is dropped
            pass
    return out


def split_60_20_20(n, seed=42):
    """(train, val, test) row indices, 60/20/20, as the reference makes them with
    scikit-learn: `train_test_split(test_size=0.2, random_state=seed)`, then
    `train_test_split(test_size=0.25, random_state=seed)` on the rest.

    scikit-learn's ShuffleSplit draws `np.random.RandomState(seed).permutation(m)`,
    takes n_test = ceil(test_size * m) and returns (perm[n_test:], perm[:n_test]),
    in permutation order; this replicates it exactly (10,000 rows -> 6,000/2,000/2,000).
    """
    rest, test = _train_test_split(np.arange(n), 0.2, seed)
    train, val = _train_test_split(rest, 0.25, seed)
    if min(len(train), len(val), len(test)) == 0:
        raise UserError(f"{n} rows are too few to split 60/20/20")
    return train, val, test


def _train_test_split(indices, test_size, seed):
    n_test = math.ceil(test_size * len(indices))
    permutation = np.random.RandomState(seed).permutation(len(indices))
    return indices[permutation[n_test:]], indices[permutation[:n_test]]
