"""The four classification datasets of docs/paper.md section 2, as texts and integer labels.

`load_classification(name)` fetches a dataset from the Hugging Face hub;
`load_classification(name, data_dir)` reads local files instead. `data_dir` is the
folder that holds the files, or a folder with one sub-folder per dataset named as in
`SUBDIRS` (../shared/data is laid out that way). Expected local files:

    imdb          imdb.npz (Keras' file), or
                  train.jsonl.gz, test.jsonl.gz  (records {"text": str, "label": 0|1})
    ag_news       train.csv, test.csv            (Zhang et al.: "class 1-4","title","description")
    20newsgroups  20news-bydate.tar.gz           (20news-bydate-{train,test}/<group>/<id>)
    reuters       reuters.npz (Keras' file), or
                  reuters21578.tar.gz            (the original SGML release, see reuters.py)

The reference tokenizes AG News and 20 Newsgroups itself, so those come as texts. IMDB and
Reuters it takes from keras.datasets, already as word ranks (1 = the most frequent word of
the whole dataset); so they come as rank arrays (`word_ranks`), read from Keras' files as
they are, or ranked from the raw texts (keras_text.rank_words), in Keras' order.
Every deviation from what the reference code loads is written in `note`.
"""
import csv
import gzip
import json
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from minisum.data import reuters
from minisum.data.hub import first_line, import_datasets
from minisum.data.keras_text import rank_words
from minisum.errors import UserError

CLS_DATASETS = ("imdb", "20newsgroups", "ag_news", "reuters")
SUBDIRS = {"imdb": "imdb", "20newsgroups": "20newsgroups", "ag_news": "ag_news", "reuters": "reuters21578"}
EXPECTED_FILES = {
    "imdb": "imdb.npz, or train.jsonl.gz and test.jsonl.gz",
    "20newsgroups": "20news-bydate.tar.gz",
    "ag_news": "train.csv and test.csv",
    "reuters": "reuters.npz, or reuters21578.tar.gz",
}
HUB_IDS = {"imdb": "stanfordnlp/imdb", "20newsgroups": "SetFit/20_newsgroups", "ag_news": "fancyzhx/ag_news"}
AG_NEWS_CLASSES = ["World", "Sports", "Business", "Sci/Tech"]


@dataclass
class ClassificationData:
    train_texts: list  # str each; with word_ranks, an int64 array of word ranks each
    train_labels: np.ndarray  # int64, 0 .. num_classes-1
    test_texts: list
    test_labels: np.ndarray
    class_names: list
    note: str = ""  # deviations from the reference's data, "" if none
    files: dict = field(default_factory=dict)  # role -> local path read ({} for the hub)
    word_ranks: bool = False  # keras.datasets' form (IMDB, Reuters): keras_text.keras_dataset_ids makes the ids

    @property
    def num_classes(self):
        return len(self.class_names)


def load_classification(name, data_dir=None):
    if name not in CLS_DATASETS:
        raise UserError(f"unknown classification dataset {name!r}: choose one of {', '.join(CLS_DATASETS)}")
    if data_dir is None:
        return _load_from_hub(name)
    files = find_local_files(name, data_dir)
    loaders = {"imdb": _load_imdb, "ag_news": _load_ag_news, "20newsgroups": _load_20newsgroups,
               "reuters": _load_reuters}
    return loaders[name](files, data_dir)


def find_local_files(name, data_dir):
    """{role: path} of the files of `name` present under `data_dir`; absent roles are left out.

    Roles: imdb "npz", "train", "test"; ag_news "train" (train.csv, else a partial
    train_head*.csv), "test", "classes"; 20newsgroups "archive"; reuters "npz", "archive".
    """
    folder = Path(data_dir)
    if (folder / SUBDIRS[name]).is_dir():
        folder = folder / SUBDIRS[name]
    candidates = {
        "imdb": {"npz": ["imdb.npz"], "train": ["train.jsonl.gz"], "test": ["test.jsonl.gz"]},
        "ag_news": {"train": ["train.csv"] + sorted(p.name for p in folder.glob("train_head*.csv")),
                    "test": ["test.csv"], "classes": ["classes.txt"]},
        "20newsgroups": {"archive": ["20news-bydate.tar.gz"]},
        "reuters": {"npz": ["reuters.npz"], "archive": ["reuters21578.tar.gz"]},
    }[name]
    found = {}
    for role, names in candidates.items():
        present = [folder / n for n in names if (folder / n).is_file()]
        if present:
            found[role] = present[0]
    return found


def _require(files, roles, name, data_dir):
    missing = [role for role in roles if role not in files]
    if missing:
        raise UserError(f"{name}: no {'/'.join(missing)} file found in {data_dir} "
                        f"(expected {EXPECTED_FILES[name]})")


def _load_from_hub(name):
    if name == "reuters":
        raise UserError("reuters: the Hugging Face hub has no copy of the Keras Reuters set; "
                        f"pass --data-dir DIR holding {EXPECTED_FILES['reuters']}")
    datasets = import_datasets()

    hub_id = HUB_IDS[name]
    try:
        splits = datasets.load_dataset(hub_id)
    except Exception as error:  # offline, unknown id, network: all mean "use local files"
        raise UserError(f"{name}: could not fetch {hub_id} from the Hugging Face hub ({first_line(error)}); "
                        f"pass --data-dir DIR holding {EXPECTED_FILES[name]}") from None
    train, test = splits["train"], splits["test"]
    if name == "imdb":
        return _keras_imdb(list(train["text"]), np.asarray(train["label"], dtype=np.int64),
                           list(test["text"]), np.asarray(test["label"], dtype=np.int64), files={})
    if name == "ag_news":
        class_names, note = list(AG_NEWS_CLASSES), ""
    else:
        names = dict(zip(train["label"], train["label_text"]))
        class_names = [names[i] for i in range(len(names))]
        note = ("20newsgroups from SetFit/20_newsgroups, taken to be scikit-learn's bydate set with "
                "headers, footers and quotes removed (not checked here)")
    return ClassificationData(list(train["text"]), np.asarray(train["label"], dtype=np.int64),
                              list(test["text"]), np.asarray(test["label"], dtype=np.int64), class_names, note)


# --- IMDB ------------------------------------------------------------------------------

def _load_imdb(files, data_dir):
    if "npz" in files:
        return read_keras_imdb_npz(files["npz"])
    _require(files, ["train", "test"], "imdb", data_dir)
    datasets = import_datasets()

    paths = {split: str(files[split]) for split in ("train", "test")}
    try:
        splits = datasets.load_dataset("json", data_files=paths)
    except Exception as error:
        for split in ("train", "test"):
            _check_jsonl(files[split])  # names the bad line, if a line is bad
        raise UserError(f"imdb: cannot load {paths['train']} and {paths['test']} ({first_line(error)})") from None
    texts, labels = {}, {}
    for split in ("train", "test"):
        columns = splits[split].column_names
        if "text" not in columns or "label" not in columns:
            raise UserError(f"{files[split]}: records need fields 'text' and 'label', found {', '.join(columns)}")
        texts[split] = list(splits[split]["text"])
        labels[split] = np.asarray(splits[split]["label"], dtype=np.int64)
        if not np.isin(labels[split], (0, 1)).all():
            line = int(np.flatnonzero(~np.isin(labels[split], (0, 1)))[0]) + 1
            raise UserError(f"{files[split]} line {line}: label must be 0 (neg) or 1 (pos)")
    return _keras_imdb(texts["train"], labels["train"], texts["test"], labels["test"],
                       files={k: str(v) for k, v in files.items()})


def _keras_imdb(train_texts, train_labels, test_texts, test_labels, files):
    """The raw reviews as keras.datasets.imdb gives them: ranked over both splits, in Keras' order."""
    ranks = rank_words(train_texts + test_texts)
    train, test = keras_imdb_order(len(train_texts), len(test_texts))
    n = len(train_texts)
    note = ("imdb: word ranks counted over the raw train and test reviews with Keras Tokenizer's word rules, "
            "not Keras' own imdb.npz")
    return ClassificationData([ranks[i] for i in train], train_labels[train], [ranks[n + i] for i in test],
                              test_labels[test], ["neg", "pos"], note, files=files, word_ranks=True)


def keras_imdb_order(n_train, n_test, seed=113):
    """keras.datasets.imdb.load_data's shuffle: one RandomState(seed) shuffles the training
    indices, then the test indices."""
    rng = np.random.RandomState(seed)
    train, test = np.arange(n_train), np.arange(n_test)
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def read_keras_imdb_npz(path):
    """Keras' own imdb.npz (x_train, y_train, x_test, y_test: raw word ranks), used as it is,
    shuffled as `load_data` does. Loading needs `allow_pickle` (the rows are ragged): only
    open an imdb.npz you trust."""
    try:
        with np.load(path, allow_pickle=True) as f:
            x_train, y_train, x_test, y_test = (f[key] for key in ("x_train", "y_train", "x_test", "y_test"))
    except (OSError, ValueError, KeyError) as error:
        raise UserError(f"{path}: not a Keras imdb.npz with arrays x_train, y_train, x_test, y_test ({error})") from None
    for x, y in ((x_train, y_train), (x_test, y_test)):
        if len(x) != len(y) or not np.isin(y, (0, 1)).all():
            raise UserError(f"{path}: each split needs one label 0 (neg) or 1 (pos) per sequence")
    train, test = keras_imdb_order(len(x_train), len(x_test))
    return ClassificationData([np.asarray(x_train[i], dtype=np.int64) for i in train],
                              np.asarray(y_train, dtype=np.int64)[train],
                              [np.asarray(x_test[i], dtype=np.int64) for i in test],
                              np.asarray(y_test, dtype=np.int64)[test], ["neg", "pos"],
                              files={"npz": str(path)}, word_ranks=True)


def _check_jsonl(path):
    """Raise a UserError naming the first line of `path` that is not a UTF-8 JSON record."""
    try:
        with gzip.open(path, "rb") as f:
            for number, line in enumerate(f, start=1):
                if line.strip():
                    json.loads(line.decode("utf-8"))
    except ValueError as error:  # bad JSON or bad UTF-8
        raise UserError(f"{path} line {number}: not a UTF-8 JSON record ({error})") from None
    except (OSError, EOFError) as error:
        raise UserError(f"{path}: not a readable gzip file ({error})") from None


# --- AG News ---------------------------------------------------------------------------

def _load_ag_news(files, data_dir):
    _require(files, ["train", "test"], "ag_news", data_dir)
    train_texts, train_labels = read_ag_news_csv(files["train"])
    test_texts, test_labels = read_ag_news_csv(files["test"])
    class_names = list(AG_NEWS_CLASSES)
    if "classes" in files:
        lines = files["classes"].read_text(encoding="utf-8").splitlines()
        class_names = [line.strip() for line in lines if line.strip()]
    note = ""
    if files["train"].name != "train.csv":
        note = (f"ag_news: training on {files['train'].name}, {len(train_texts)} rows, "
                "not the full 120,000-row train.csv")
    return ClassificationData(train_texts, train_labels, test_texts, test_labels, class_names, note,
                              files={k: str(v) for k, v in files.items()})


def read_ag_news_csv(path):
    """(texts, labels) from one Zhang et al. AG News CSV, read as HF `ag_news` reads it:
    label = class - 1, text = title + " " + description, the literal backslash escapes
    of the file left as they are."""
    texts, labels = [], []
    try:
        with open(path, encoding="utf-8") as f:
            # The reader settings of HF's ag_news script, so quoting and spaces come out the same.
            reader = csv.reader(f, quotechar='"', delimiter=",", quoting=csv.QUOTE_ALL, skipinitialspace=True)
            for row in reader:
                if len(row) != 3 or row[0] not in ("1", "2", "3", "4"):
                    raise UserError(f"{path} line {reader.line_num}: expected \"class 1-4\",\"title\",\"description\"")
                labels.append(int(row[0]) - 1)
                texts.append(row[1] + " " + row[2])
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"cannot read {path}: {error}") from None
    return texts, np.asarray(labels, dtype=np.int64)


# --- 20 Newsgroups ---------------------------------------------------------------------

def _load_20newsgroups(files, data_dir):
    _require(files, ["archive"], "20newsgroups", data_dir)
    path = files["archive"]
    raw = {"train": [], "test": []}  # (group, file name, text)
    try:
        with tarfile.open(path) as archive:
            for member in archive:
                parts = member.name.split("/")
                if member.isfile() and len(parts) == 3 and parts[0] in ("20news-bydate-train", "20news-bydate-test"):
                    text = archive.extractfile(member).read().decode("latin-1")
                    raw[parts[0].rsplit("-", 1)[1]].append((parts[1], parts[2], text))
    except (tarfile.TarError, OSError, EOFError) as error:
        raise UserError(f"{path}: cannot read the archive ({error})") from None
    if not raw["train"] or not raw["test"]:
        raise UserError(f"{path}: expected folders 20news-bydate-train/ and 20news-bydate-test/ inside")
    groups = sorted({group for group, _, _ in raw["train"]})
    index = {group: i for i, group in enumerate(groups)}
    unknown = sorted({group for group, _, _ in raw["test"]} - set(groups))
    if unknown:
        raise UserError(f"{path}: test group {unknown[0]!r} has no training folder")
    out = {}
    for split, messages in raw.items():
        messages.sort(key=lambda m: (m[0], m[1]))  # scikit-learn's load_files order, before its shuffle
        texts = [strip_newsgroup_quoting(strip_newsgroup_footer(strip_newsgroup_header(t))) for _, _, t in messages]
        out[split] = (texts, np.asarray([index[g] for g, _, _ in messages], dtype=np.int64))
    note = "20newsgroups in group/file order, not scikit-learn's shuffled order"
    return ClassificationData(*out["train"], *out["test"], groups, note, files={"archive": str(path)})


# The three functions below follow scikit-learn's sklearn/datasets/_twenty_newsgroups.py,
# which `fetch_20newsgroups(remove=("headers", "footers", "quotes"))` applies in this order.

def strip_newsgroup_header(text):
    """Drop everything before the first blank line (the headers)."""
    _before, _blankline, after = text.partition("\n\n")
    return after


_QUOTE_RE = re.compile(r"(writes in|writes:|wrote:|says:|said:|^In article|^Quoted from|^\||^>)")


def strip_newsgroup_quoting(text):
    """Drop lines starting with > or |, and lines that usually introduce a quote ('writes:')."""
    good_lines = [line for line in text.split("\n") if not _QUOTE_RE.search(line)]
    return "\n".join(good_lines)


def strip_newsgroup_footer(text):
    """Drop the signature: everything from the last blank or all-hyphen line on
    (blank lines at the very end do not count)."""
    lines = text.strip().split("\n")
    for line_num in range(len(lines) - 1, -1, -1):
        line = lines[line_num]
        if line.strip().strip("-") == "":
            break
    if line_num > 0:
        return "\n".join(lines[:line_num])
    return text


# --- Reuters ---------------------------------------------------------------------------

def _load_reuters(files, data_dir):
    if "npz" in files:
        ranks, labels = reuters.read_keras_reuters_npz(files["npz"])
        class_names, note, used = list(reuters.KERAS_TOPIC_NAMES), "", {"npz": str(files["npz"])}
    else:
        _require(files, ["archive"], "reuters", data_dir)
        texts, labels, class_names = reuters.select_keras_reuters(reuters.read_reuters_archive(files["archive"]))
        ranks = rank_words(texts)
        note = ("reuters rebuilt from the Reuters-21578 SGML by Keras' selection rule (see minisum/data/reuters.py), "
                "word ranks counted over its 11,228 wires with Keras Tokenizer's word rules")
        used = {"archive": str(files["archive"])}
    train, test = reuters.keras_split(len(ranks))
    return ClassificationData([ranks[i] for i in train], labels[train], [ranks[i] for i in test], labels[test],
                              class_names, note, files=used, word_ranks=True)
