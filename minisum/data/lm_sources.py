"""The texts of the four language-modeling datasets (docs/paper.md section 1).

`load_lm_texts` returns {"train": [...], "valid": [...]}: one string per WikiText line,
per review, per news item or per book summary, exactly as the Hugging Face versions the
reference code uses would give them. The validation texts are the validation split
for WikiText-2, the test split for IMDB and AG News, and 10% of CMU Book Summaries
(the reference splits that single table 80/10/10 with seed 42).

Without a data directory the texts come from the Hugging Face hub. With one they are
read from local files in the original release formats; the readers copy what HF's own
loading scripts did with those files:

- WikiText-2: `wiki.{train,valid}.raw` (else `.tokens`), plain or `.gz`. One text per
  line, trailing "\\n" kept, whitespace-only lines as "" (HF `wikitext` script).
- IMDB: `train.jsonl.gz`, `test.jsonl.gz` (fields `text`, `label`); reordered negative
  reviews first, as on HF. Within a class the order is by review id here and archive
  order on HF, so "the first 5,000" are not the same reviews.
- AG News: `train.csv`, `test.csv` (no header; class, title, description);
  text = title + " " + description, and the release's literal backslash escapes
  ("\\n", "\\$") stay as they are, as in HF `ag_news`. A `train_head*.csv` stands in
  for a missing `train.csv`, with a warning.
- CMU Book Summaries: `booksummaries.txt` (7 tab-separated fields, summary last).
"""

import gzip
import json
import warnings
from pathlib import Path

from minisum.data.classification_sources import read_ag_news_csv
from minisum.data.hub import import_datasets
from minisum.errors import UserError

LM_DATASETS = ("wikitext2", "cmu_books", "imdb", "ag_news")

# What --data-dir must hold, for the error messages.
EXPECTED_FILES = {
    "wikitext2": "wiki.train.raw and wiki.valid.raw (or wiki.*.tokens; plain or .gz)",
    "cmu_books": "booksummaries.txt",
    "imdb": "train.jsonl.gz and test.jsonl.gz",
    "ag_news": "train.csv and test.csv",
}

# Hub id, config, text column, train split, validation split (None: split it ourselves).
_HUB = {
    "wikitext2": ("wikitext", "wikitext-2-raw-v1", "text", "train", "validation"),
    "cmu_books": ("textminr/cmu-book-summaries", None, "summary", "train", None),
    "imdb": ("stanfordnlp/imdb", None, "text", "train", "test"),
    "ag_news": ("fancyzhx/ag_news", None, "text", "train", "test"),
}


def load_lm_texts(dataset: str, data_dir: str | None = None) -> dict[str, list[str]]:
    """Train and validation texts of `dataset`, from `data_dir` or else from the hub."""
    if dataset not in LM_DATASETS:
        raise UserError(f"unknown dataset {dataset!r}; choose one of {', '.join(LM_DATASETS)}")
    if data_dir is None:
        return _from_hub(dataset)
    folder = Path(data_dir)
    if not folder.is_dir():
        raise UserError(f"--data-dir {folder} is not a directory; it should hold {EXPECTED_FILES[dataset]}")
    readers = {"wikitext2": _wikitext_local, "cmu_books": _cmu_local, "imdb": _imdb_local, "ag_news": _ag_news_local}
    return readers[dataset](folder)


def _from_hub(dataset: str) -> dict[str, list[str]]:
    datasets = import_datasets()

    hub_id, config, column, train_split, valid_split = _HUB[dataset]
    try:
        table = datasets.load_dataset(hub_id, config)
    except Exception as exc:  # offline, hub down, renamed dataset: all mean "use local files"
        raise UserError(
            f"dataset {dataset} could not be fetched from the Hugging Face hub ({type(exc).__name__}); "
            f"pass --data-dir DIR holding {EXPECTED_FILES[dataset]}"
        ) from exc
    if valid_split is None:
        return _split_80_10_10(list(table[train_split][column]))
    return {"train": list(table[train_split][column]), "valid": list(table[valid_split][column])}


def _split_80_10_10(texts: list[str]) -> dict[str, list[str]]:
    """The reference's CMU Book Summaries split: 10% test, then 10% validation, seed 42.

    Same calls as the reference (HF `train_test_split`, whose permutation is
    `np.random.default_rng(42)`), on positions so the texts need not go through Arrow.
    The reference splits its tokenized samples, i.e. after dropping texts of fewer than
    2 GPT-2 tokens; blank texts are dropped here, and a summary that is not blank yet
    shorter than 2 tokens (none is expected) would shift the split.
    """
    datasets = import_datasets()

    texts = [text for text in texts if text.strip()]
    total = len(texts)
    n_test, n_valid = int(total * 0.1), int(total * 0.1)
    if n_test == 0:
        raise UserError(f"CMU Book Summaries needs at least 10 summaries for its 80/10/10 split, got {total}")
    positions = datasets.Dataset.from_dict({"i": list(range(total))})
    rest = positions.train_test_split(test_size=n_test, shuffle=True, seed=42)["train"]
    split = rest.train_test_split(test_size=n_valid / (total - n_test), shuffle=True, seed=42)
    return {name: [texts[i] for i in split[part]["i"]] for name, part in (("train", "train"), ("valid", "test"))}


def _missing(dataset: str, folder: Path) -> UserError:
    return UserError(f"{folder} does not hold the {dataset} files: expected {EXPECTED_FILES[dataset]}")


def _open_text(path: Path):
    # Text mode with universal newlines, like the `open(path, encoding="utf-8")` of HF's scripts.
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _read_lines(path: Path) -> list[str]:
    try:
        with _open_text(path) as lines:
            return list(lines)
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from exc


def _wikitext_local(folder: Path) -> dict[str, list[str]]:
    return {"train": _wikitext_lines(folder, "train"), "valid": _wikitext_lines(folder, "valid")}


def _wikitext_lines(folder: Path, split: str) -> list[str]:
    # Raw is what the reference uses; the tokenized release differs only by <unk> for rare words.
    for name in (f"wiki.{split}.raw", f"wiki.{split}.raw.gz", f"wiki.{split}.tokens", f"wiki.{split}.tokens.gz"):
        if (folder / name).is_file():
            return [line if line.strip() else "" for line in _read_lines(folder / name)]
    raise _missing("wikitext2", folder)


def _imdb_local(folder: Path) -> dict[str, list[str]]:
    if not ((folder / "train.jsonl.gz").is_file() and (folder / "test.jsonl.gz").is_file()):
        raise _missing("imdb", folder)
    return {"train": _imdb_texts(folder / "train.jsonl.gz"), "valid": _imdb_texts(folder / "test.jsonl.gz")}


def _imdb_texts(path: Path) -> list[str]:
    reviews = []
    for number, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            reviews.append((int(record["label"]), str(record["text"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{path} line {number}: not an IMDB record with text and label ({exc})") from exc
    # HF imdb lists the negative reviews (label 0) first; a stable sort keeps each class in file order.
    return [text for _, text in sorted(reviews, key=lambda review: review[0])]


def _ag_news_local(folder: Path) -> dict[str, list[str]]:
    train = folder / "train.csv"
    if not train.is_file():
        heads = sorted(folder.glob("train_head*.csv"))
        if heads:
            train = heads[0]
            warnings.warn(f"AG News: {train} is only the head of the training set; using it in place of train.csv")
    if not (train.is_file() and (folder / "test.csv").is_file()):
        raise _missing("ag_news", folder)
    return {"train": read_ag_news_csv(train)[0], "valid": read_ag_news_csv(folder / "test.csv")[0]}


def _cmu_local(folder: Path) -> dict[str, list[str]]:
    path = folder / "booksummaries.txt"
    if not path.is_file():
        raise _missing("cmu_books", folder)
    summaries = []
    for number, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        fields = line.rstrip("\n").split("\t")
        if len(fields) != 7:
            raise UserError(f"{path} line {number}: expected 7 tab-separated fields, got {len(fields)}")
        summaries.append(fields[6])
    return _split_80_10_10(summaries)
