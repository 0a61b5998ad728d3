"""The Keras Reuters newswire set (11,228 wires, 46 topics), rebuilt from Reuters-21578.

Keras ships the set only as word ids (`reuters.npz`) and no longer ships the code
that made it. This module rebuilds it from the original SGML release
(`reuters21578.tar.gz`, files `reut2-000.sgm` .. `reut2-021.sgm`, latin-1), and also
reads the Keras files when a user has them.

The rule, checked against the SGML here: take every document with at least one topic
(11,367 of 21,578) and label it with its FIRST topic (82 distinct); keep the 46 most
frequent labels (ties by name; there is none at the cut); number the labels in order of
first appearance by NEWID. This gives exactly Keras' 11,228 documents and exactly the
label list of `keras.datasets.reuters.get_label_names()`, in the same order. (Keeping
only single-topic documents gives 9,435 in the top 46 and a different topic list.) The text is the BODY, else the TITLE (for "BRIEF" wires), else the whole
TEXT element (for "UNPROC" wires), with its SGML entities left as they are: Keras'
first training wire decodes to "? ? ? said as a result of its december acquisition
of space co ... reuter 3", the body of NEWID 2560 without its title and with its
closing "&#3;" kept as "3". `keras_split` is Keras' own shuffle and 80/20 cut; applied
to the wires in NEWID order, its first training wire is that same NEWID 2560 and its
per-topic training counts equal Keras' `np.bincount(y_train)`: the same split.
Keras' word ranks cannot be rebuilt byte for byte (its tokenization is unpublished):
keras_text.rank_words ranks the words of these texts over the 11,228 wires instead.
"""
import re
import tarfile
from collections import Counter
from dataclasses import dataclass

import numpy as np

from minisum.errors import UserError

KERAS_NUM_TOPICS = 46
# keras.datasets.reuters.get_label_names(): the name of each label id of reuters.npz.
KERAS_TOPIC_NAMES = (
    "cocoa", "grain", "veg-oil", "earn", "acq", "wheat", "copper", "housing", "money-supply", "coffee",
    "sugar", "trade", "reserves", "ship", "cotton", "carcass", "crude", "nat-gas", "cpi", "money-fx",
    "interest", "gnp", "meal-feed", "alum", "oilseed", "gold", "tin", "strategic-metal", "livestock",
    "retail", "ipi", "iron-steel", "rubber", "heat", "jobs", "lei", "bop", "zinc", "orange", "pet-chem",
    "dlr", "gas", "silver", "wpi", "hog", "lead",
)

_BLOCK = re.compile(r"<REUTERS\b([^>]*)>(.*?)</REUTERS>", re.S)
_NEWID = re.compile(r'NEWID="(\d+)"')
_TOPICS = re.compile(r"<TOPICS>(.*?)</TOPICS>", re.S)
_D = re.compile(r"<D>(.*?)</D>", re.S)
_TITLE = re.compile(r"<TITLE>(.*?)</TITLE>", re.S)
_BODY = re.compile(r"<BODY>(.*?)</BODY>", re.S)
_TEXT = re.compile(r"<TEXT\b[^>]*>(.*?)</TEXT>", re.S)
_TAG = re.compile(r"<[^>]*>")


@dataclass
class ReutersDoc:
    newid: int
    topics: list  # in the order the file lists them
    text: str


def parse_reuters_sgml(sgml, source="<string>"):
    """All <REUTERS> documents of one .sgm file's text; `source` names it in errors."""
    docs = []
    end = 0
    for match in _BLOCK.finditer(sgml):
        attributes, block = match.groups()
        if "<REUTERS" in sgml[end:match.start()] or "<REUTERS" in block:
            _raise_unclosed(sgml, end, source)
        newid = _NEWID.search(attributes)
        topics = _TOPICS.search(block)
        if newid is None or topics is None:
            missing = "NEWID" if newid is None else "<TOPICS>"
            line = sgml.count("\n", 0, match.start()) + 1
            raise UserError(f"{source} line {line}: <REUTERS> document without {missing}")
        docs.append(ReutersDoc(int(newid.group(1)), _D.findall(topics.group(1)), _document_text(block)))
        end = match.end()
    if "<REUTERS" in sgml[end:]:
        _raise_unclosed(sgml, end, source)
    return docs


def _raise_unclosed(sgml, start, source):
    line = sgml.count("\n", 0, sgml.find("<REUTERS", start)) + 1
    raise UserError(f"{source} line {line}: <REUTERS> document without its </REUTERS>")


def _document_text(block):
    for pattern in (_BODY, _TITLE):
        found = pattern.search(block)
        if found and found.group(1).strip():
            return found.group(1)
    found = _TEXT.search(block)
    return _TAG.sub(" ", found.group(1)) if found else ""


def read_reuters_archive(path):
    """Parse every reut2-*.sgm in the tar archive at `path`, sorted by NEWID."""
    try:
        with tarfile.open(path) as archive:
            members = sorted((m for m in archive.getmembers() if re.search(r"reut2-\d+\.sgm$", m.name)),
                             key=lambda m: m.name)
            if not members:
                raise UserError(f"{path}: no reut2-*.sgm files inside (expected the Reuters-21578 release)")
            docs = []
            for member in members:
                sgml = archive.extractfile(member).read().decode("latin-1")
                docs.extend(parse_reuters_sgml(sgml, source=f"{path}:{member.name}"))
    except (tarfile.TarError, OSError, EOFError) as error:
        raise UserError(f"{path}: cannot read the archive ({error})") from None
    return sorted(docs, key=lambda doc: doc.newid)


def select_keras_reuters(docs, num_topics=KERAS_NUM_TOPICS):
    """(texts, labels, topic_names) by the Keras rule of the module docstring.

    `docs` must be in NEWID order: it decides the label numbering.
    """
    labelled = [(doc.text, doc.topics[0]) for doc in docs if doc.topics and doc.text.strip()]
    counts = Counter(topic for _, topic in labelled)
    kept = set(sorted(counts, key=lambda topic: (-counts[topic], topic))[:num_topics])
    names = []
    for _, topic in labelled:
        if topic in kept and topic not in names:
            names.append(topic)
    index = {topic: i for i, topic in enumerate(names)}
    chosen = [(text, index[topic]) for text, topic in labelled if topic in kept]
    texts = [text for text, _ in chosen]
    labels = np.array([label for _, label in chosen], dtype=np.int64)
    return texts, labels, names


def keras_split(n, test_split=0.2, seed=113):
    """(train_idx, test_idx) as `keras.datasets.reuters.load_data` makes them:
    `np.random.RandomState(seed).shuffle(arange(n))`, the first int(n * (1 - test_split))
    for training."""
    indices = np.arange(n)
    np.random.RandomState(seed).shuffle(indices)
    cut = int(n * (1 - test_split))
    return indices[:cut], indices[cut:]


def read_keras_reuters_npz(npz_path):
    """(ranks, labels) from Keras' own `reuters.npz`, used as it is: each wire an int64
    array of raw word ranks (x), and its label (y). `keras_split` then splits them as
    `load_data` does, and keras_text.keras_dataset_ids adds the start id and the offset.
    Loading needs `allow_pickle` (the rows are ragged): only open a reuters.npz you trust.
    """
    try:
        with np.load(npz_path, allow_pickle=True) as f:
            xs, ys = f["x"], f["y"]
    except (OSError, ValueError, KeyError) as error:
        raise UserError(f"{npz_path}: not a Keras reuters.npz with arrays x and y ({error})") from None
    labels = np.asarray(ys, dtype=np.int64)
    if len(xs) != len(labels):
        raise UserError(f"{npz_path}: {len(xs)} sequences but {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(KERAS_TOPIC_NAMES)):
        raise UserError(f"{npz_path}: labels must lie in 0..{len(KERAS_TOPIC_NAMES) - 1}")
    return [np.asarray(x, dtype=np.int64) for x in xs], labels
