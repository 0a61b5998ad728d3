"""Tokenizers for the language-modeling script: GPT-2's own, or a small one trained here.

`load_tokenizer("gpt2", dir)` builds GPT-2's byte-level BPE (vocabulary 50,257, the
paper's tokenizer) from the released `vocab.json` + `merges.txt`, or fetches it from
the Hugging Face hub. Its ids equal GPT-2's. `load_tokenizer("bpe:N", None, texts)`
trains a byte-level BPE of about N tokens on the training texts: a much smaller
output layer, for quick runs. Both pad with `<|endoftext|>`, as the reference does.
"""

from dataclasses import dataclass
from pathlib import Path

from minisum.atomic import atomic_open
from minisum.checkpoint import fingerprint
from minisum.errors import UserError

END_OF_TEXT = "<|endoftext|>"
GPT2_END_OF_TEXT_ID = 50256
# 256 byte symbols plus <|endoftext|>: a byte-level vocabulary cannot be smaller.
MIN_BPE_SIZE = 257


@dataclass(frozen=True)
class LMTokenizer:
    """Text <-> token ids; a thin wrapper over a `tokenizers.Tokenizer`."""

    name: str
    vocab_size: int
    pad_id: int
    backend: object

    def encode(self, text: str) -> list[int]:
        return self.backend.encode(text).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        # One call into the Rust library for many texts: much faster than a loop of encode().
        return [encoding.ids for encoding in self.backend.encode_batch(texts)]

    def decode(self, ids) -> str:
        # Keep <|endoftext|> visible: it is real text for the model, not markup to hide.
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=False)

    def fingerprint(self) -> str:
        """A short hash of the whole tokenizer: checkpoints record it, to be used with the same ids."""
        return fingerprint(self.backend.to_str())

    def save(self, path) -> None:
        """Write the tokenizer as JSON, atomically (a bpe:N tokenizer is learned from the data: keep it)."""
        with atomic_open(path, "w", encoding="utf-8") as f:
            f.write(self.backend.to_str())


def read_tokenizer(path, name: str) -> LMTokenizer:
    """The tokenizer that `LMTokenizer.save` wrote to `path`; `name` is its spec (gpt2, bpe:N)."""
    from tokenizers import Tokenizer

    try:
        backend = Tokenizer.from_file(str(path))
    except Exception as err:  # the Rust loader raises plain Exception for unreadable files
        raise UserError(f"cannot read the tokenizer {path}: {err}") from None
    if backend.token_to_id(END_OF_TEXT) is None:
        raise UserError(f"the tokenizer {path} has no {END_OF_TEXT} token: not one that train_lm.py saved")
    return LMTokenizer(name=name, vocab_size=backend.get_vocab_size(), pad_id=backend.token_to_id(END_OF_TEXT),
                       backend=backend)


def load_tokenizer(
    spec: str, tokenizer_dir: str | None = None, train_texts: list[str] | None = None
) -> LMTokenizer:
    """`spec` is "gpt2" (from `tokenizer_dir`, else the hub) or "bpe:N" (trained on `train_texts`)."""
    if spec == "gpt2":
        backend = _gpt2(tokenizer_dir)
    elif spec.startswith("bpe:"):
        if train_texts is None:
            raise ValueError("a bpe:N tokenizer needs the training texts to learn from")
        backend = _train_bpe(train_texts, _bpe_size(spec))
    else:
        raise UserError(f"unknown tokenizer {spec!r}; use gpt2 or bpe:N (a byte-level BPE of N tokens, e.g. bpe:4000)")
    return LMTokenizer(
        name=spec, vocab_size=backend.get_vocab_size(), pad_id=backend.token_to_id(END_OF_TEXT), backend=backend
    )


def vocabulary_size(spec: str) -> int:
    """The number of tokens tokenizer `spec` will have (bpe:N: at most N), checked before any data is read."""
    if spec == "gpt2":
        return GPT2_END_OF_TEXT_ID + 1
    if spec.startswith("bpe:"):
        return _bpe_size(spec)
    raise UserError(f"unknown tokenizer {spec!r}; use gpt2 or bpe:N (a byte-level BPE of N tokens, e.g. bpe:4000)")


def _bpe_size(spec: str) -> int:
    size = spec.removeprefix("bpe:")
    if not size.isdigit() or int(size) < MIN_BPE_SIZE:
        raise UserError(f"tokenizer {spec!r}: N in bpe:N must be a whole number >= {MIN_BPE_SIZE}")
    return int(size)


def _gpt2(tokenizer_dir: str | None):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    if tokenizer_dir is None:
        try:
            return Tokenizer.from_pretrained("gpt2")
        except Exception as exc:  # offline or hub down: the local files are the way out
            raise UserError(
                f"the GPT-2 tokenizer could not be fetched from the Hugging Face hub ({type(exc).__name__}); "
                "pass --tokenizer-dir DIR holding GPT-2's vocab.json and merges.txt"
            ) from exc
    folder = Path(tokenizer_dir)
    vocab, merges = folder / "vocab.json", folder / "merges.txt"
    if not (vocab.is_file() and merges.is_file()):
        raise UserError(f"--tokenizer-dir {folder} must hold GPT-2's vocab.json and merges.txt")
    try:
        tokenizer = Tokenizer(models.BPE.from_file(str(vocab), str(merges)))
    except Exception as exc:  # the Rust loader raises plain Exception for unreadable or malformed files
        raise UserError(f"cannot read the GPT-2 tokenizer in {folder}: {exc}") from exc
    # GPT-2 splits text with its regex, maps bytes to printable symbols and adds no leading space.
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    # As in HF's gpt2 tokenizer, a literal "<|endoftext|>" in a text is the one special token.
    tokenizer.add_special_tokens([END_OF_TEXT])
    if tokenizer.token_to_id(END_OF_TEXT) != GPT2_END_OF_TEXT_ID:
        raise UserError(f"{vocab} is not GPT-2's vocabulary: {END_OF_TEXT} is not id {GPT2_END_OF_TEXT_ID}")
    return tokenizer


def _train_bpe(texts: list[str], size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=size,
        special_tokens=[END_OF_TEXT],  # id 0; the pad token
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable, even unseen ones
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer
