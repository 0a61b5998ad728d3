"""Tests of the language-modeling data pipeline: texts, tokenizers, samples and batches."""


# Any hub request must fail at once instead of waiting on the network.

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from minisum.data.gpt2_tokenizer import load_tokenizer
from minisum.data.lm_samples import batches, count_tokens, make_samples
from minisum.data.lm_sources import load_lm_texts
from minisum.errors import UserError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "lm"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
GPT2_DIR = SHARED / "gpt2-tokenizer"


@pytest.fixture(scope="module")
def gpt2():
    if not GPT2_DIR.is_dir():
        pytest.skip("no GPT-2 tokenizer files in ../shared/data")
    return load_tokenizer("gpt2", str(GPT2_DIR))


# ---- texts -------------------------------------------------------------------------


def test_wikitext_fixture_gives_lines_as_hf_does():
    texts = load_lm_texts("wikitext2", str(FIXTURES))
    raw_lines = (FIXTURES / "wiki.train.tokens").read_text(encoding="utf-8").split("\n")[:-1]
    assert len(texts["train"]) == len(raw_lines)
    # HF's wikitext rows: a line with its "\n", a blank (" ") line as "".
    assert texts["train"][:3] == ["", " = Valkyria Chronicles III = \n", ""]
    assert texts["valid"][1] == " = Homarus gammarus = \n"
    assert all(text == "" or text.endswith("\n") for text in texts["train"])
    assert sum(text != "" for text in texts["train"]) == sum(line.strip() != "" for line in raw_lines)


def test_wikitext_prefers_raw_and_reads_gzip(tmp_path):
    with gzip.open(tmp_path / "wiki.train.raw.gz", "wt", encoding="utf-8") as file:
        file.write(" = Raw = \n \n raw text \n")
    (tmp_path / "wiki.train.tokens").write_text(" = Tokens = \n", encoding="utf-8")
    (tmp_path / "wiki.valid.tokens").write_text(" valid <unk> line \n", encoding="utf-8")
    texts = load_lm_texts("wikitext2", str(tmp_path))
    assert texts == {"train": [" = Raw = \n", "", " raw text \n"], "valid": [" valid <unk> line \n"]}


@pytest.mark.parametrize("dataset, named", [
    ("wikitext2", "wiki.train.raw"), ("imdb", "train.jsonl.gz"), ("ag_news", "train.csv"), ("cmu_books", "booksummaries.txt"),
])
def test_missing_files_name_the_files_and_the_directory(tmp_path, dataset, named):
    with pytest.raises(UserError, match=named) as error:
        load_lm_texts(dataset, str(tmp_path))
    assert str(tmp_path) in str(error.value)


def test_data_dir_that_is_not_a_directory(tmp_path):
    with pytest.raises(UserError, match="not a directory"):
        load_lm_texts("imdb", str(tmp_path / "nowhere"))


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(UserError, match="wikitext2, cmu_books, imdb, ag_news"):
        load_lm_texts("wikitext103", None)


def test_hub_failure_says_how_to_use_local_files(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'imdb' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(UserError) as error:
        load_lm_texts("imdb", None)
    message = str(error.value)
    assert "could not be fetched" in message and "--data-dir" in message
    assert "train.jsonl.gz" in message and "test.jsonl.gz" in message and "\n" not in message


@pytest.mark.parametrize("dataset, hub_args, tables, expected", [
    ("wikitext2", ("wikitext", "wikitext-2-raw-v1"),
     {"train": {"text": ["a\n"]}, "validation": {"text": ["v\n"]}, "test": {"text": ["t\n"]}},
     {"train": ["a\n"], "valid": ["v\n"]}),
    ("imdb", ("stanfordnlp/imdb", None),
     {"train": {"text": ["r"]}, "test": {"text": ["s"]}, "unsupervised": {"text": ["u"]}},
     {"train": ["r"], "valid": ["s"]}),
    ("ag_news", ("fancyzhx/ag_news", None),
     {"train": {"text": ["n"]}, "test": {"text": ["m"]}},
     {"train": ["n"], "valid": ["m"]}),
])
def test_hub_ids_and_validation_splits(monkeypatch, dataset, hub_args, tables, expected):
    import datasets

    calls = []

    def fake_hub(*args):
        calls.append(args)
        return tables

    monkeypatch.setattr(datasets, "load_dataset", fake_hub)
    assert load_lm_texts(dataset, None) == expected
    assert calls == [hub_args]


def test_hub_cmu_books_is_split_like_the_local_file(monkeypatch, tmp_path):
    import datasets

    summaries = _write_book_summaries(tmp_path / "booksummaries.txt", 30)
    monkeypatch.setattr(datasets, "load_dataset", lambda *args: {"train": {"summary": summaries}})
    assert load_lm_texts("cmu_books", None) == load_lm_texts("cmu_books", str(tmp_path))


def test_imdb_fixture_puts_negative_reviews_first():
    texts = load_lm_texts("imdb", str(FIXTURES))
    # The fixture, like the shared copy, stores positive reviews first; HF imdb starts with the negative ones.
    assert texts["train"] == [
        "Two hours I will never get back.<br /><br />The plot makes no sense at all.",
        "Wooden acting and a script that goes nowhere.",
        "Awful.",
        "A warm, funny film.<br /><br />The cast is superb and the ending made me smile.",
        "Better than I expected; the score alone is worth it.",
    ]
    assert texts["valid"] == ["It starts well, then drags on and on.", "Do not watch this.", "A masterpiece of quiet storytelling."]


def test_ag_news_fixture_joins_title_and_description_keeping_escapes():
    texts = load_lm_texts("ag_news", str(FIXTURES))
    assert len(texts["train"]) == 4 and len(texts["valid"]) == 3
    # HF ag_news keeps the release's backslash escapes literally ("\e" below is a backslash and an e).
    assert texts["train"][0] == "Stocks Edge Higher (Reuters) Reuters - Shares rose on Monday as oil prices\\eased, traders said."
    assert texts["train"][3] == 'Talks Resume Negotiators met again in Geneva, saying the "final" deal was close.'


def test_ag_news_uses_a_train_head_file_with_a_warning(tmp_path):
    shutil.copy(FIXTURES / "train.csv", tmp_path / "train_head4.csv")
    shutil.copy(FIXTURES / "test.csv", tmp_path / "test.csv")
    with pytest.warns(UserWarning, match="train_head4.csv"):
        texts = load_lm_texts("ag_news", str(tmp_path))
    assert len(texts["train"]) == 4


def test_ag_news_malformed_row_names_file_and_line(tmp_path):
    (tmp_path / "train.csv").write_text('"1","a","b"\n"2","only title"\n', encoding="utf-8")
    shutil.copy(FIXTURES / "test.csv", tmp_path / "test.csv")
    with pytest.raises(UserError, match=r'train\.csv line 2: expected "class 1-4"'):
        load_lm_texts("ag_news", str(tmp_path))


def _write_book_summaries(path, count):
    rows = [f"{i}\t/m/{i}\tTitle {i}\tAuthor\t1950\t{{}}\t Summary of book {i}.\n" for i in range(count)]
    path.write_text("".join(rows), encoding="utf-8")
    return [f" Summary of book {i}." for i in range(count)]


def test_cmu_split_follows_hf_train_test_split_with_seed_42(tmp_path):
    summaries = _write_book_summaries(tmp_path / "booksummaries.txt", 30)
    texts = load_lm_texts("cmu_books", str(tmp_path))
    # By hand from HF's documented algorithm: test = the first int(0.1 n) of
    # default_rng(42).permutation(n), train = the rest in permutation order; then
    # the same on the rest for validation (ceil(3/27 * 27) = 3 of 27).
    first = np.random.default_rng(42).permutation(30)
    rest = first[3:]
    second = np.random.default_rng(42).permutation(27)
    assert texts["valid"] == [summaries[rest[j]] for j in second[:3]]
    assert texts["train"] == [summaries[rest[j]] for j in second[3:]]


def test_cmu_malformed_row_names_file_and_line(tmp_path):
    _write_book_summaries(tmp_path / "booksummaries.txt", 12)
    with open(tmp_path / "booksummaries.txt", "a", encoding="utf-8") as file:
        file.write("1\tonly\tthree\n")
    with pytest.raises(UserError, match=r"booksummaries\.txt line 13: expected 7 tab-separated fields"):
        load_lm_texts("cmu_books", str(tmp_path))


# ---- tokenizers --------------------------------------------------------------------

# Expected ids: "Hello world" and " the" by hand from vocab.json ("Hello" 15496, "Ġworld" 995,
# "Ġthe" 262); the others from OpenAI's tiktoken (0.14, run once, not a dependency) given the
# same vocab.json / merges.txt: tiktoken.load.data_gym_to_mergeable_bpe_ranks and GPT-2's regex.
GPT2_CASES = [
    ("Hello world", [15496, 995]),
    (" the", [262]),
    ("<|endoftext|>", [50256]),
    (" = Valkyria Chronicles III = \n", [796, 569, 18354, 7496, 17740, 6711, 796, 220, 198]),
    ("It's 1,234.5 km — naïve café\t\tdon't  stop!\n\n",
     [1026, 338, 352, 11, 24409, 13, 20, 10571, 851, 41492, 40304, 197, 197, 9099, 470, 220, 2245, 0, 628]),
    ("Senjō no Valkyria 3 : <unk> Chronicles ( Japanese : 戦場のヴァルキュリア3 , lit . Valkyria of the Battlefield 3 ) , "
     "commonly referred to as Valkyria Chronicles III outside Japan , is a tactical role @-@ playing video game .\n",
     [10445, 73, 13090, 645, 569, 18354, 7496, 513, 1058, 1279, 2954, 29, 17740, 357, 4960, 1058, 10545, 230, 99, 161,
      254, 112, 5641, 44444, 9202, 25084, 24440, 12675, 11839, 18, 837, 6578, 764, 569, 18354, 7496, 286, 262, 30193,
      513, 1267, 837, 8811, 6412, 284, 355, 569, 18354, 7496, 17740, 6711, 2354, 2869, 837, 318, 257, 16106, 2597,
      2488, 12, 31, 2712, 2008, 983, 764, 198]),
]


def test_gpt2_ids_equal_openai_gpt2(gpt2):
    texts = [text for text, _ in GPT2_CASES]
    assert [gpt2.encode(text) for text in texts] == [ids for _, ids in GPT2_CASES]
    assert gpt2.encode_batch(texts) == [ids for _, ids in GPT2_CASES]
    assert [gpt2.decode(ids) for _, ids in GPT2_CASES] == texts
    assert (gpt2.vocab_size, gpt2.pad_id, gpt2.name) == (50257, 50256, "gpt2")


def test_tokenizer_dir_without_the_files(tmp_path):
    with pytest.raises(UserError, match="vocab.json and merges.txt"):
        load_tokenizer("gpt2", str(tmp_path))


def test_tokenizer_dir_with_broken_files(tmp_path):
    (tmp_path / "vocab.json").write_text("{not json", encoding="utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    with pytest.raises(UserError, match="cannot read the GPT-2 tokenizer"):
        load_tokenizer("gpt2", str(tmp_path))


def test_gpt2_hub_failure_says_to_pass_tokenizer_dir(monkeypatch, tmp_path):
    import huggingface_hub.constants

    # Offline and an empty cache: tokenizers fetches through huggingface_hub, which reads these per call.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(UserError, match="--tokenizer-dir"):
        load_tokenizer("gpt2", None)


@pytest.mark.parametrize("spec", ["gpt3", "bpe:", "bpe:many", "bpe:100"])
def test_bad_tokenizer_spec(spec):
    with pytest.raises(UserError, match="bpe:"):
        load_tokenizer(spec, None, ["some text"])


def test_bpe_trained_on_fixture_round_trips_and_is_deterministic():
    train = load_lm_texts("wikitext2", str(FIXTURES))["train"]
    first = load_tokenizer("bpe:400", None, train)
    second = load_tokenizer("bpe:400", None, train)
    # 256 bytes + <|endoftext|> + merges; the small fixture may run out of pairs before 400.
    assert 300 < first.vocab_size <= 400
    assert first.pad_id == 0 and first.decode([first.pad_id]) == "<|endoftext|>"
    assert first.backend.get_vocab() == second.backend.get_vocab()
    unseen = "Zürich 東京 ~{tabs}\t\tand  spaces \n"
    for text in train[:10] + [unseen]:
        assert first.decode(first.encode(text)) == text
    # Merges learned from the text make its lines shorter than their byte counts.
    assert len(first.encode(train[1])) < len(train[1].encode("utf-8"))


# ---- samples and batches -----------------------------------------------------------


class NumberTokenizer:
    """Stand-in tokenizer: the text "5 6 7" is the ids [5, 6, 7]; it records what it was asked."""

    def __init__(self):
        self.seen = []

    def encode_batch(self, texts):
        self.seen.extend(texts)
        return [[int(word) for word in text.split()] for text in texts]


def test_samples_need_two_tokens_and_are_truncated():
    tokenizer = NumberTokenizer()
    samples = make_samples(["1 2 3 4 5", "9", "", "   \n", "7 8", "4 4 4"], tokenizer, max_len=3)
    assert [s.tolist() for s in samples] == [[1, 2, 3], [7, 8], [4, 4, 4]]
    assert all(s.dtype == np.int64 for s in samples)
    # Blank texts are never tokenized, as in the reference.
    assert tokenizer.seen == ["1 2 3 4 5", "9", "7 8", "4 4 4"]


def test_samples_stop_at_the_limit():
    samples = make_samples(["1 2", "3", "4 5", "6 7", "8 9"], NumberTokenizer(), max_len=256, limit=2)
    assert [s.tolist() for s in samples] == [[1, 2], [4, 5]]


def test_batches_pad_to_the_longest_and_shift_by_one():
    samples = [np.array([1, 2, 3]), np.array([4, 5]), np.array([6, 7, 8, 9])]
    got = list(batches(samples, batch_size=2, pad_id=0))
    assert len(got) == 2
    (inputs, targets), (last_inputs, last_targets) = got
    assert inputs.tolist() == [[1, 2], [4, 5]] and targets.tolist() == [[2, 3], [5, 0]]
    assert last_inputs.tolist() == [[6, 7, 8]] and last_targets.tolist() == [[7, 8, 9]]
    assert inputs.dtype == targets.dtype == np.int64
    assert count_tokens(samples) == 9


def test_shuffled_epochs_cover_every_sample_once_in_new_orders():
    samples = [np.array([i, i]) for i in range(20)]
    rng = np.random.default_rng(0)
    epochs = [[int(inputs[0, 0]) for inputs, _ in batches(samples, 1, -1, shuffle=True, rng=rng)] for _ in range(2)]
    assert sorted(epochs[0]) == sorted(epochs[1]) == list(range(20))
    assert epochs[0] != epochs[1]
    replay = np.random.default_rng(0)
    assert [int(i[0, 0]) for i, _ in batches(samples, 1, -1, shuffle=True, rng=replay)] == epochs[0]


def test_fixture_samples_with_gpt2(gpt2):
    texts = load_lm_texts("wikitext2", str(FIXTURES))
    samples = make_samples(texts["train"], gpt2, max_len=256)
    # Every non-blank WikiText line has at least a word and its "\n": one sample each.
    assert len(samples) == sum(text != "" for text in texts["train"])
    assert samples[0].tolist() == [796, 569, 18354, 7496, 17740, 6711, 796, 220, 198]


def test_real_wikitext2_sample_counts(gpt2):
    folder = SHARED / "wikitext-2"
    if not (folder / "wiki.train.tokens.gz").is_file():
        pytest.skip("no WikiText-2 in ../shared/data")
    texts = load_lm_texts("wikitext2", str(folder))
    # Line counts from ../shared/data/README.md (the official release's).
    assert (len(texts["train"]), len(texts["valid"])) == (36718, 3760)
    train = make_samples(texts["train"], gpt2, max_len=256, limit=5000)
    assert len(train) == 5000 and max(len(s) for s in train) == 256
    # All of valid: one sample per non-blank line of the release file.
    valid = make_samples(texts["valid"], gpt2, max_len=256)
    with gzip.open(folder / "wiki.valid.tokens.gz", "rt", encoding="utf-8") as file:
        assert len(valid) == sum(line.strip() != "" for line in file)
    assert valid[0].tolist() == gpt2.encode(" = Homarus gammarus = \n")
