"""Text pipelines for classification: Keras-equivalent tokenizers and the four datasets.

Expected outputs are derived by hand from Keras' rules, in the comments. Tests on the
real data in ../shared/data skip when it is absent.
"""
import gzip
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest


from minisum.data import reuters  # noqa: E402
from minisum.data.classification_sources import (  # noqa: E402
    CLS_DATASETS, find_local_files, load_classification, strip_newsgroup_footer,
    strip_newsgroup_header, strip_newsgroup_quoting)
from minisum.data.keras_text import (  # noqa: E402
    KERAS_FILTERS, TextVectorizer, WordTokenizer, keras_dataset_ids, rank_words)
from minisum.errors import UserError  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "cls"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def needs_shared(*parts):
    path = SHARED_DATA.joinpath(*parts)
    return pytest.mark.skipif(not path.exists(), reason=f"{path} not present")


# --- WordTokenizer (Keras Tokenizer + pad_sequences) -----------------------------------

def test_word_tokenizer_index_by_count_then_first_appearance():
    # Lower-cased, filters -> space, split on " ":
    #   "the cat sat" / "the dog sat the end" / "cat dog bird fish" (hyphen, tab, newline are filters)
    # Counts: the 3; cat 2, sat 2, dog 2; end 1, bird 1, fish 1. Ties keep first-seen order
    # (cat, sat from text 1, then dog), not alphabetical (cat, dog, sat).
    tok = WordTokenizer(num_words=5, maxlen=4).fit(["The cat sat.", "the DOG sat, the end!", "Cat-dog\tbird\nfish"])
    assert tok.word_index == {"the": 1, "cat": 2, "sat": 3, "dog": 4, "end": 5, "bird": 6, "fish": 7}


def test_word_tokenizer_front_truncation_front_padding_and_num_words_cut():
    tok = WordTokenizer(num_words=5, maxlen=4).fit(["The cat sat.", "the DOG sat, the end!", "Cat-dog\tbird\nfish"])
    out = tok.transform(["The end of the cat, the dog!", "sat", "unknown words only", ""])
    # text 1: the=1, end=5 (>= num_words: dropped), of (unseen: dropped), the=1, cat=2, the=1, dog=4
    #   -> [1, 1, 2, 1, 4], 5 ids > maxlen 4: the FIRST is cut -> [1, 2, 1, 4]
    # text 2: [3] -> zeros in front; texts 3 and 4: nothing left -> all padding
    assert out.tolist() == [[1, 2, 1, 4], [0, 0, 0, 3], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert out.dtype == np.int64


def test_word_tokenizer_keeps_what_keras_keeps_inside_words():
    # The apostrophe is not a filter; "\r" and a no-break space are not the split character.
    tok = WordTokenizer().fit(["Don't stop", "don't x\ry a\u00a0b"])
    assert tok.word_index == {"don't": 1, "stop": 2, "x\ry": 3, "a\u00a0b": 4}


def test_word_tokenizer_lowercases_like_python():
    # Python's str.lower() writes a final sigma at the end of a word; a per-character
    # lower-casing would give "οδοσ".
    assert WordTokenizer().fit(["ΟΔΟΣ"]).word_index == {"οδος": 1}


def test_word_tokenizer_every_filter_character_splits():
    tok = WordTokenizer().fit(["a" + "a".join(KERAS_FILTERS) + "a"])
    assert tok.word_index == {"a": 1}


# --- TextVectorizer (Keras TextVectorization) ------------------------------------------

def test_text_vectorizer_vocabulary_order_and_cut():
    # Standardised: "hate hate love" / "love hate cats" / "dogs dont bark" (the apostrophe is stripped)
    # Counts: hate 3, love 2, then count 1: cats, dogs, dont, bark. Keras breaks ties by token
    # DESCENDING: dont, dogs, cats, bark. max_tokens 6 = "" + [UNK] + 4 tokens.
    vec = TextVectorizer(max_tokens=6, output_sequence_length=5).fit(
        ["Hate, hate; LOVE!", "love  hate\tcats", "Dogs don't   bark"])
    assert vec.vocabulary == ["", "[UNK]", "hate", "love", "dont", "dogs"]
    assert vec.vocab_size == 6


def test_text_vectorizer_oov_end_padding_end_truncation():
    vec = TextVectorizer(max_tokens=6, output_sequence_length=5).fit(
        ["Hate, hate; LOVE!", "love  hate\tcats", "Dogs don't   bark"])
    out = vec.transform(["Cats hate DOGS.", "hate hate hate love love dont", ""])
    # cats was cut from the vocabulary -> 1 (OOV); hate 2; dogs 5; zeros after.
    # 6 tokens > 5: the LAST is cut.
    assert out.tolist() == [[1, 2, 5, 0, 0], [2, 2, 2, 3, 3], [0, 0, 0, 0, 0]]
    assert out.dtype == np.int64


def test_text_vectorizer_lowercases_ascii_only_and_splits_on_ascii_whitespace():
    # tf.strings.lower leaves "É" alone: "ÉCOLE" -> "École", a different token from "école".
    # The no-break space does not split. Tie at count 1, descending: "É" (0xC9) > "a".
    vec = TextVectorizer().fit(["ÉCOLE école école a\u00a0b"])
    assert vec.vocabulary == ["", "[UNK]", "école", "École", "a\u00a0b"]


# --- keras.datasets' ids (IMDB, Reuters) ----------------------------------------------

def test_rank_words_counts_over_all_texts():
    # the 3, cat 2, then dog, bird, a (1 each, first seen first); Keras Tokenizer's word rules
    ranks = rank_words(["The cat, the DOG.", "bird CAT the", "a"])
    assert [r.tolist() for r in ranks] == [[1, 2, 1, 3], [4, 2, 1], [5]]


def test_keras_dataset_ids_start_offset_oov_and_front_padding():
    # rank r -> id r + 3, ids >= num_words (6) -> 2 (kept), id 1 in front, then pad_sequences(maxlen=4)
    ids = keras_dataset_ids([np.array([1, 2, 1, 3]), np.array([2, 9]), np.array([], dtype=np.int64)],
                            num_words=6, maxlen=4)
    assert ids.tolist() == [[4, 5, 4, 2],  # [1, 4, 5, 4, 6->2] truncated at the front
                            [0, 1, 5, 2],
                            [0, 0, 0, 1]]
    with pytest.raises(ValueError, match="num_words"):
        keras_dataset_ids([np.array([1])], num_words=2)


def decode_keras_ids(ids, word_index):
    """What Keras users do: id i is the word of rank i - 3, "?" for 1 (start) and 2 (OOV)."""
    words = {rank + 3: word for word, rank in word_index.items()}
    return " ".join(words.get(int(i), "?") for i in ids if i)


# --- Reuters ---------------------------------------------------------------------------

def test_reuters_selection_on_fixture():
    docs = reuters.parse_reuters_sgml((FIXTURES / "reuters" / "reut2-000.sgm").read_text(encoding="latin-1"))
    assert [d.newid for d in docs] == [1, 2, 3, 4, 5, 6, 7, 8]
    texts, labels, names = reuters.select_keras_reuters(docs, num_topics=3)
    # First topics: grain(1), -(2, dropped), earn(3), acq(4), earn(5), cocoa(6), acq(7, of acq+earn), zinc(8).
    # Counts: acq 2, earn 2, then cocoa, grain, zinc 1 each: the top 3 (ties by name) are acq, earn, cocoa.
    # Labels numbered by first appearance: earn (NEWID 3), acq (4), cocoa (6).
    assert names == ["earn", "acq", "cocoa"]
    assert labels.tolist() == [0, 1, 0, 2, 1]
    # Body, entities as they are; title for the BRIEF wire; the whole TEXT for the UNPROC wire.
    assert texts[0] == "Shr 1.15 dlrs vs 70 cts\n Reuter\n&#3;"
    assert texts[1].strip() == "ACME BUYS WIDGET CO"
    assert "COCOA WEEKLY REPORT" in texts[3] and "Arrivals 155,221 bags" in texts[3]
    assert texts[4].startswith("Gadget Inc agreed")


def test_reuters_archive_and_split(tmp_path):
    archive = tmp_path / "reuters21578.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(FIXTURES / "reuters" / "reut2-000.sgm", arcname="reuters21578/reut2-000.sgm")
    data = load_classification("reuters", tmp_path)
    assert data.files == {"archive": str(archive)} and data.word_ranks
    # 7 wires with a topic, 5 topics (all kept with the default 46): 5 train, 2 test (int(7 * 0.8) = 5)
    assert (len(data.train_texts), len(data.test_texts)) == (5, 2)
    assert data.class_names == ["grain", "earn", "acq", "cocoa", "zinc"]
    again = load_classification("reuters", tmp_path)
    assert all(np.array_equal(a, b) for a, b in zip(again.train_texts, data.train_texts))  # the split is fixed
    # Ranked over all 7 wires, as Keras ranks over the whole dataset.
    texts, _, _ = reuters.select_keras_reuters(reuters.parse_reuters_sgml(
        (FIXTURES / "reuters" / "reut2-000.sgm").read_text(encoding="latin-1")))
    word_index = WordTokenizer().fit(texts).word_index
    decoded = [decode_keras_ids(keras_dataset_ids([r], 10000, 64)[0], word_index)
               for r in data.train_texts + data.test_texts]
    assert ("? zinc rose 2 pct reuter 3", 4) in zip(decoded, np.r_[data.train_labels, data.test_labels].tolist())


def test_keras_split_sizes_and_partition():
    train, test = reuters.keras_split(11228)
    assert (len(train), len(test)) == (8982, 2246)  # Keras' Reuters split sizes
    assert sorted(np.r_[train, test].tolist()) == list(range(11228))
    assert not np.array_equal(train[:100], np.arange(100))  # shuffled


@pytest.mark.parametrize("sgml, message", [
    ('<REUTERS NEWID="1">\n<TOPICS></TOPICS>\n<REUTERS NEWID="2"><TOPICS></TOPICS></REUTERS>', "line 1: .*without its </REUTERS>"),
    ('<REUTERS NEWID="1"><TOPICS></TOPICS></REUTERS>\n\n<REUTERS NEWID="2">', "line 3: .*without its </REUTERS>"),
    ('\n<REUTERS NEWID="1"><BODY>x</BODY></REUTERS>', "line 2: .*without <TOPICS>"),
])
def test_reuters_malformed_sgml_names_the_line(sgml, message):
    with pytest.raises(UserError, match="bad.sgm " + message):
        reuters.parse_reuters_sgml(sgml, source="bad.sgm")


def test_reuters_keras_npz_is_used_as_it_is(tmp_path):
    xs = np.empty(3, dtype=object)
    xs[:] = [[1, 2, 3], [3, 4, 99], [2]]  # raw ranks
    np.savez(tmp_path / "reuters.npz", x=xs, y=np.array([3, 4, 3]))
    data = load_classification("reuters", tmp_path)
    assert data.word_ranks and data.files == {"npz": str(tmp_path / "reuters.npz")}
    train, test = reuters.keras_split(3)
    assert [r.tolist() for r in data.train_texts + data.test_texts] == [xs[i] for i in np.r_[train, test]]
    assert data.train_labels.tolist() == [[3, 4, 3][i] for i in train]
    assert data.class_names[3:5] == ["earn", "acq"]
    assert len(data.train_texts) == 2  # int(3 * 0.8)


@needs_shared("reuters21578", "reuters21578.tar.gz")
def test_reuters_real_data_is_the_keras_set():
    data = load_classification("reuters", SHARED_DATA)
    assert (len(data.train_texts), len(data.test_texts)) == (8982, 2246)
    assert data.class_names == list(reuters.KERAS_TOPIC_NAMES)
    # Keras' first training wire, decoded as Chollet's Deep Learning with Python does it (num_words
    # 10000): McGrath RentCorp's body, its two rare first words out of vocabulary.
    texts, _, _ = reuters.select_keras_reuters(reuters.read_reuters_archive(
        SHARED_DATA / "reuters21578" / "reuters21578.tar.gz"))
    ids = keras_dataset_ids(data.train_texts[:1], num_words=10000, maxlen=1000)[0]
    assert decode_keras_ids(ids, WordTokenizer().fit(texts).word_index) == (
        "? ? ? said as a result of its december acquisition of space co it expects earnings per share in 1987 "
        "of 1 15 to 1 30 dlrs per share up from 70 cts in 1986 the company said pretax net should rise to nine "
        "to 10 mln dlrs from six mln dlrs in 1986 and rental operation revenues to 19 to 22 mln dlrs from 12 5 "
        "mln dlrs it said cash flow per share this year should be 2 50 to three dlrs reuter 3")
    # np.bincount(y_train) of keras.datasets.reuters.load_data(), as published.
    assert np.bincount(data.train_labels).tolist() == [
        55, 432, 74, 3159, 1949, 17, 48, 16, 139, 101, 124, 390, 49, 172, 26, 20, 444, 39, 66, 549, 269, 100, 15,
        41, 62, 92, 24, 15, 48, 19, 45, 39, 32, 11, 50, 10, 49, 19, 19, 24, 36, 30, 13, 21, 12, 18]


# --- AG News ---------------------------------------------------------------------------

def test_ag_news_partial_train_and_hf_text(tmp_path):
    data = load_classification("ag_news", FIXTURES / "ag_news")
    assert data.train_labels.tolist() == [2, 3, 0, 1]  # class 1-4 -> 0-3
    # title + " " + description; the file's backslash stays, as in HF ag_news; "" -> "
    assert data.train_texts[0] == ("Wall St. Bears Claw Back (Reuters) Reuters - Short-sellers, Wall Street's "
                                   "dwindling\\band of ultra-cynics, are seeing green again.")
    assert data.train_texts[1].startswith('New "Quantum" Chip SPACE.com - A second\\team')
    assert data.test_labels.tolist() == [1, 3]
    assert data.class_names == ["World", "Sports", "Business", "Sci/Tech"]
    assert "train_head4.csv" in data.note and "4 rows" in data.note


def test_ag_news_missing_train_and_malformed_row(tmp_path):
    (tmp_path / "test.csv").write_text('"1","a","b"\n"2","c"\n')
    assert set(find_local_files("ag_news", tmp_path)) == {"test"}
    with pytest.raises(UserError, match="no train file"):
        load_classification("ag_news", tmp_path)
    (tmp_path / "train.csv").write_text('"1","a","b"\n')
    with pytest.raises(UserError, match=r"test\.csv line 2"):
        load_classification("ag_news", tmp_path)


@needs_shared("ag_news", "test.csv")
def test_ag_news_real_test_split():
    data = load_classification("ag_news", SHARED_DATA)
    assert len(data.test_texts) == 7600
    assert np.bincount(data.test_labels).tolist() == [1900] * 4


# --- 20 Newsgroups ---------------------------------------------------------------------

MESSAGE = ("From: a@b.c\nSubject: Re: x\n\n"  # headers end at the first blank line
           "In article <1@b.c> a@b.c writes:\n"  # quote introduction
           "> quoted line\n"
           "| also quoted\n"
           "My own text.\n"
           "More text.\n"
           "\n"
           "-- \n"
           "Signature line\n")


def test_newsgroup_strippers():
    body = strip_newsgroup_header(MESSAGE)
    assert body.startswith("In article")
    # footer: the last blank or all-hyphen line is "-- " (stripped of spaces and hyphens: ""):
    # everything from it on goes.
    no_footer = strip_newsgroup_footer(body)
    assert no_footer == "In article <1@b.c> a@b.c writes:\n> quoted line\n| also quoted\nMy own text.\nMore text.\n"
    assert strip_newsgroup_quoting(no_footer) == "My own text.\nMore text.\n"
    assert strip_newsgroup_footer("one line, no separator") == "one line, no separator"


def _add(tar, name, text):
    data = text.encode("latin-1")
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def test_20newsgroups_archive(tmp_path):
    with tarfile.open(tmp_path / "20news-bydate.tar.gz", "w:gz") as tar:
        _add(tar, "20news-bydate-train/sci.space/2", "H: x\n\nOrbit caf\xe9.\n")
        _add(tar, "20news-bydate-train/alt.atheism/9", "H: x\n\nGod?\n")
        _add(tar, "20news-bydate-train/sci.space/10", MESSAGE)
        _add(tar, "20news-bydate-test/sci.space/5", "H: y\n\nLaunch.\n")
    data = load_classification("20newsgroups", tmp_path)
    assert data.class_names == ["alt.atheism", "sci.space"]
    # group order, then file name order as strings ("10" < "2")
    assert data.train_texts == ["God?\n", "My own text.\nMore text.\n", "Orbit caf\u00e9.\n"]
    assert data.train_labels.tolist() == [0, 1, 1]
    assert data.test_texts == ["Launch.\n"] and data.test_labels.tolist() == [1]


@needs_shared("20newsgroups", "20news-bydate.tar.gz")
def test_20newsgroups_real_counts_and_tokenizer_matches_keras_rules():
    data = load_classification("20newsgroups", SHARED_DATA)
    assert (len(data.train_texts), len(data.test_texts), data.num_classes) == (11314, 7532, 20)
    assert data.class_names[0] == "alt.atheism" and np.bincount(data.train_labels)[0] == 480
    # The tokenizers-based WordTokenizer against a plain transcription of Keras' Python code.
    train, test = data.train_texts[::10], data.test_texts[::10]
    tok = WordTokenizer().fit(train)
    expected_index, expected = _keras_reference(train, test)
    assert tok.word_index == expected_index
    np.testing.assert_array_equal(tok.transform(test), expected)


def _keras_reference(train, test, num_words=10000, maxlen=256):
    """keras.preprocessing.text.Tokenizer + pad_sequences, transcribed."""
    table = str.maketrans({c: " " for c in KERAS_FILTERS})

    def words(text):
        return [w for w in text.lower().translate(table).split(" ") if w]

    counts = {}
    for text in train:
        for w in words(text):
            counts[w] = counts.get(w, 0) + 1
    ranked = sorted(counts.items(), key=lambda x: x[1], reverse=True)
    index = {w: i for i, (w, _) in enumerate(ranked, start=1)}
    out = np.zeros((len(test), maxlen), dtype=np.int64)
    for row, text in enumerate(test):
        seq = [index[w] for w in words(text) if w in index and index[w] < num_words][-maxlen:]
        if seq:
            out[row, -len(seq):] = seq
    return index, out


# --- IMDB ------------------------------------------------------------------------------

def _write_jsonl_gz(path, lines):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))


def test_imdb_jsonl(tmp_path):
    _write_jsonl_gz(tmp_path / "train.jsonl.gz", [json.dumps({"text": "Great film", "label": 1}),
                                                   json.dumps({"text": "Dull", "label": 0})])
    _write_jsonl_gz(tmp_path / "test.jsonl.gz", [json.dumps({"text": "Fine", "label": 1})])
    data = load_classification("imdb", tmp_path)
    # Ranked over both splits: great, film, dull, fine; Keras' shuffle (seed 113) of the two training rows.
    pairs = sorted((r.tolist(), y) for r, y in zip(data.train_texts, data.train_labels.tolist()))
    assert data.word_ranks and pairs == [([1, 2], 1), ([3], 0)]
    assert [r.tolist() for r in data.test_texts] == [[4]] and data.class_names == ["neg", "pos"]


def test_imdb_keras_npz_is_used_as_it_is(tmp_path):
    x_train, x_test = np.empty(3, dtype=object), np.empty(2, dtype=object)
    x_train[:], x_test[:] = [[5, 1], [2], [7, 7, 7]], [[3], [1, 4]]
    np.savez(tmp_path / "imdb.npz", x_train=x_train, y_train=np.array([1, 0, 1]), x_test=x_test,
             y_test=np.array([0, 1]))
    _write_jsonl_gz(tmp_path / "train.jsonl.gz", [json.dumps({"text": "ignored", "label": 1})])
    data = load_classification("imdb", tmp_path)
    assert data.word_ranks and data.files == {"npz": str(tmp_path / "imdb.npz")}
    rng = np.random.RandomState(113)  # keras.datasets.imdb.load_data's shuffle: train, then test
    train, test = np.arange(3), np.arange(2)
    rng.shuffle(train)
    rng.shuffle(test)
    assert [r.tolist() for r in data.train_texts] == [x_train[i] for i in train]
    assert [r.tolist() for r in data.test_texts] == [x_test[i] for i in test]
    assert data.train_labels.tolist() == [[1, 0, 1][i] for i in train]


def test_imdb_malformed_line(tmp_path):
    _write_jsonl_gz(tmp_path / "train.jsonl.gz", [json.dumps({"text": "a", "label": 1}), '{"text": "b", "label"'])
    _write_jsonl_gz(tmp_path / "test.jsonl.gz", [json.dumps({"text": "c", "label": 0})])
    with pytest.raises(UserError, match=r"train\.jsonl\.gz line 2"):
        load_classification("imdb", tmp_path)


@needs_shared("imdb", "train.jsonl.gz")
def test_imdb_real_data():
    data = load_classification("imdb", SHARED_DATA)
    assert (len(data.train_texts), len(data.test_texts)) == (25000, 25000)
    assert np.bincount(data.train_labels).tolist() == [12500, 12500]
    assert data.train_labels[:20].tolist() != sorted(data.train_labels[:20].tolist())  # Keras' shuffle, not pos first


# --- common ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", CLS_DATASETS)
def test_hub_failure_is_one_line_user_error(name):
    with pytest.raises(UserError) as error:
        load_classification(name)
    message = str(error.value)
    assert "--data-dir" in message and "\n" not in message
    assert {"imdb": "train.jsonl.gz", "20newsgroups": "20news-bydate.tar.gz", "ag_news": "train.csv",
            "reuters": "reuters21578.tar.gz"}[name] in message


def test_unknown_dataset():
    with pytest.raises(UserError, match="unknown classification dataset"):
        load_classification("mnist")
