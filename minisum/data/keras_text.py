"""Word-level text to integer sequences, exactly as the Keras reference prepares it.

Three Keras preprocessors are reproduced:

* `WordTokenizer` (classification of AG News and 20 Newsgroups, docs/paper.md section 2) = Keras
  `Tokenizer(num_words=10000)` + `texts_to_sequences` + `pad_sequences(maxlen=256)`;
* `keras_dataset_ids` (classification of IMDB and Reuters) = `keras.datasets.imdb/reuters.
  load_data(num_words=10000)` + `pad_sequences(maxlen=256)`, from word ranks (`rank_words`
  makes them from raw texts);
* `TextVectorizer` (multimodal regression, section 3) = Keras
  `TextVectorization(max_tokens=5000, output_sequence_length=300)`.

The first and last are fitted on the training texts only. All give NumPy int64 arrays (N, length).
"""
import re
from collections import Counter

import numpy as np

# Keras Tokenizer's default `filters`: each of these characters becomes a space.
KERAS_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'

# TextVectorization's "lower_and_strip_punctuation" deletes the characters of the regex
# [!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\'] : exactly Python's string.punctuation.
_STRIP_PUNCTUATION = '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~'
_ASCII_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_STANDARDIZE = str.maketrans(_ASCII_UPPER, _ASCII_UPPER.lower(), _STRIP_PUNCTUATION)
# tf.strings.split(x) with no separator splits on runs of C-locale whitespace.
_ASCII_WHITESPACE = re.compile("[ \t\n\v\f\r]+")
# WordTokenizer maps unknown words and words past num_words to this id, then removes
# them. Its token is a single space, which can never be a word: words are split on spaces.
_DROPPED_ID = 0

# keras.datasets' imdb and reuters `load_data` defaults: every sequence starts with id 1,
# the word of rank r (1 = the most frequent) has id r + 3, ids >= num_words become 2.
KERAS_START_ID, KERAS_OOV_ID, KERAS_INDEX_FROM = 1, 2, 3


class WordTokenizer:
    """Keras `Tokenizer(num_words)` + `texts_to_sequences` + `pad_sequences(maxlen)`.

    Keras' rules:
    * `text.lower()`, then every character of `KERAS_FILTERS` becomes a space, then the
      text is split on the space character only (a tab or newline was already a filter;
      other whitespace such as "\\r" or a no-break space stays inside words), empty
      pieces dropped;
    * `fit`: word index by descending count; equal counts keep the order in which the
      words were first seen (Keras sorts an insertion-ordered dict of counts with a
      stable sort); indices start at 1;
    * `transform`: words with index >= num_words, and unseen words, are dropped (no OOV
      token); then sequences are truncated and padded at the FRONT to maxlen with 0.

    Who does what: the `tokenizers` library does the filtering (a `Replace` normalizer,
    one regex of the filter characters), the split (a `Split(" ")` pre-tokenizer) and the
    word-to-index lookup (a `WordLevel` model holding the indices 1..num_words-1) in
    `transform`, batched in Rust. Python does the lower-casing with `str.lower()`,
    because `tokenizers.normalizers.Lowercase` lowers character by character and so
    misses Python's final-sigma rule ("ΟΔΟΣ" -> "οδος", not "οδοσ"). Python also counts
    the words in `fit`: the same normalizer, a split on " ", a `Counter` (which keeps
    first-seen order for the ties). NumPy does the padding.
    """

    def __init__(self, num_words=10000, maxlen=256):
        self.num_words = num_words
        self.maxlen = maxlen
        self.word_index = {}  # every word seen in fit, as Keras keeps it (not cut at num_words)
        self._tokenizer = None

    def fit(self, texts):
        self._tokenizer = _make_tokenizer({})  # its normalizer serves the counting
        counts = Counter()
        for text in texts:
            counts.update(self._words(text))
        ranked = sorted(counts.items(), key=lambda item: item[1], reverse=True)  # stable
        self.word_index = {word: i for i, (word, _) in enumerate(ranked, start=1)}
        kept = {word: i for word, i in self.word_index.items() if i < self.num_words}
        self._tokenizer = _make_tokenizer(kept)
        return self

    def transform(self, texts):
        if self._tokenizer is None:
            raise RuntimeError("WordTokenizer.transform called before fit")
        encodings = self._tokenizer.encode_batch([text.lower() for text in texts], add_special_tokens=False)
        out = np.zeros((len(encodings), self.maxlen), dtype=np.int64)
        for row, encoding in zip(out, encodings):
            ids = [i for i in encoding.ids if i != _DROPPED_ID][-self.maxlen:]  # keep the end
            if ids:
                row[-len(ids):] = ids  # zeros in front
        return out

    def _words(self, text):
        # Split in Python with the pre-tokenizer's rule: `pre_tokenize_str` would do the
        # same but builds an offsets tuple per word, several times slower.
        normalized = self._tokenizer.normalizer.normalize_str(text.lower())
        return [word for word in normalized.split(" ") if word]


def rank_words(texts):
    """Each text as an int64 array of word ranks, rank 1 the most frequent word over all
    `texts` (ties: first seen first): the form of keras.datasets' imdb.npz and reuters.npz,
    whose ranks are counted over the whole dataset. Words are split by `WordTokenizer`'s
    (Keras Tokenizer's) rules; Keras never published the tokenization behind its files."""
    normalizer = _make_tokenizer({}).normalizer
    first_seen = {}  # word -> its number in order of first appearance
    sequences = []
    for text in texts:
        words = [word for word in normalizer.normalize_str(text.lower()).split(" ") if word]
        sequences.append(np.array([first_seen.setdefault(word, len(first_seen)) for word in words], dtype=np.int64))
    counts = np.bincount(np.concatenate([np.zeros(0, np.int64), *sequences]), minlength=len(first_seen))
    by_count = np.argsort(-counts, kind="stable")  # count descending, ties in order of first appearance
    rank = np.empty_like(by_count)
    rank[by_count] = np.arange(1, len(by_count) + 1)
    return [rank[sequence] for sequence in sequences]


def keras_dataset_ids(ranks, num_words=10000, maxlen=256):
    """keras.datasets' `load_data(num_words)` + `pad_sequences(maxlen)` on word-rank sequences:
    id 1 in front, each rank + 3, ids >= num_words replaced by 2 (kept, not dropped), then
    truncated and padded at the FRONT to maxlen with 0. (N, maxlen) int64."""
    if num_words <= KERAS_OOV_ID:
        raise ValueError(f"num_words must be more than {KERAS_OOV_ID}, the out-of-vocabulary id; got {num_words}")
    out = np.zeros((len(ranks), maxlen), dtype=np.int64)
    for row, sequence in zip(out, ranks):
        ids = np.concatenate([[KERAS_START_ID], np.asarray(sequence, dtype=np.int64) + KERAS_INDEX_FROM])
        ids[ids >= num_words] = KERAS_OOV_ID
        ids = ids[-maxlen:]  # keep the end
        row[-len(ids):] = ids  # zeros in front
    return out


def _make_tokenizer(vocab):
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel

    tokenizer = Tokenizer(WordLevel({" ": _DROPPED_ID, **vocab}, unk_token=" "))
    tokenizer.normalizer = normalizers.Replace(Regex("[" + re.escape(KERAS_FILTERS) + "]"), " ")
    # "removed" drops the spaces; runs of spaces would leave empty pieces, which the
    # library does not emit, matching Keras' `if i` filter.
    tokenizer.pre_tokenizer = pre_tokenizers.Split(" ", behavior="removed")
    return tokenizer


class TextVectorizer:
    """Keras `TextVectorization(max_tokens, output_sequence_length)`, output_mode "int".

    Keras' rules (keras/src/layers/preprocessing/text_vectorization.py, index_lookup.py):
    * standardize "lower_and_strip_punctuation": `tf.strings.lower`, which lowers ASCII
      letters only (its default encoding "" means ASCII), then delete every character of
      the regex quoted at `_STRIP_PUNCTUATION` (string.punctuation);
    * split "whitespace": `tf.strings.split`, runs of ASCII whitespace (space, \\t, \\n,
      \\v, \\f, \\r) separate tokens, no empty tokens. Assumption: TensorFlow's
      whitespace test is C `isspace`, so a no-break space does not split;
    * vocabulary: "" (index 0, padding), "[UNK]" (1), then the max_tokens - 2 most
      frequent tokens. Ties: Keras sorts with `np.lexsort((tokens, counts))[::-1]`, i.e.
      count descending, then token DESCENDING (by UTF-8 bytes, which orders like code
      points, so Python string order is the same);
    * lookup: unknown tokens -> 1; sequences truncated and padded at the END to
      output_sequence_length with 0.
    Plain Python does all of it (`str.translate`, a regex split): the `tokenizers`
    Lowercase normalizer would lower non-ASCII letters too.
    """

    def __init__(self, max_tokens=5000, output_sequence_length=300):
        self.max_tokens = max_tokens
        self.output_sequence_length = output_sequence_length
        self.vocabulary = ["", "[UNK]"]
        self._index = {}

    @property
    def vocab_size(self):
        return len(self.vocabulary)

    def fit(self, texts):
        counts = Counter()
        for text in texts:
            counts.update(_standardize_and_split(text))
        ranked = sorted(counts.items(), key=lambda item: (item[1], item[0]), reverse=True)
        self.vocabulary = ["", "[UNK]"] + [token for token, _ in ranked[: self.max_tokens - 2]]
        self._index = {token: i for i, token in enumerate(self.vocabulary) if i >= 2}
        return self

    def transform(self, texts):
        out = np.zeros((len(texts), self.output_sequence_length), dtype=np.int64)
        for row, text in zip(out, texts):
            ids = [self._index.get(token, 1) for token in _standardize_and_split(text)]
            ids = ids[: self.output_sequence_length]  # keep the start
            row[: len(ids)] = ids  # zeros at the end
        return out


def _standardize_and_split(text):
    return [token for token in _ASCII_WHITESPACE.split(text.translate(_STANDARDIZE)) if token]
