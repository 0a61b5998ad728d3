"""Language-modeling samples and batches, as the reference builds them (docs/paper.md section 1).

Every text that tokenizes to 2 or more tokens is one sample, cut to `max_len` tokens;
texts are never packed together. A batch pads its samples with the pad id to the
longest one, and the model reads `ids[:, :-1]` to predict `ids[:, 1:]`; the loss
skips targets equal to the pad id.
"""

import numpy as np

# Texts per encode_batch call: big enough to keep the Rust tokenizer busy, small enough
# that a `limit` of a few thousand samples stops after little wasted work.
_CHUNK = 1024


def make_samples(texts: list[str], tokenizer, max_len: int, limit: int | None = None) -> list[np.ndarray]:
    """The first `limit` samples (all if None) of `texts`, as int64 arrays of 2..max_len ids."""
    if max_len < 2:
        raise ValueError(f"max_len must be at least 2 (one input and one target), got {max_len}")
    samples = []
    for start in range(0, len(texts), _CHUNK):
        # The reference never tokenizes empty or whitespace-only texts (WikiText's blank lines).
        chunk = [text for text in texts[start : start + _CHUNK] if text.strip()]
        for ids in tokenizer.encode_batch(chunk):
            if len(ids) >= 2:
                samples.append(np.asarray(ids[:max_len], dtype=np.int64))
                if limit is not None and len(samples) >= limit:
                    return samples[:limit]
    return samples


def batches(
    samples: list[np.ndarray], batch_size: int, pad_id: int, shuffle: bool = False, rng: np.random.Generator | None = None
):
    """Yield (inputs, targets) int64 arrays of shape (batch, longest - 1), one pass over `samples`.

    With `shuffle`, the order is a fresh permutation drawn from `rng`: call once per epoch.
    The last batch may be smaller (no sample is dropped).
    """
    if shuffle and rng is None:
        raise ValueError("shuffle=True needs rng, a numpy Generator")
    order = rng.permutation(len(samples)) if shuffle else np.arange(len(samples))
    for start in range(0, len(order), batch_size):
        chosen = [samples[i] for i in order[start : start + batch_size]]
        ids = np.full((len(chosen), max(len(s) for s in chosen)), pad_id, dtype=np.int64)
        for row, sample in enumerate(chosen):
            ids[row, : len(sample)] = sample
        yield ids[:, :-1], ids[:, 1:]


def count_tokens(samples: list[np.ndarray]) -> int:
    """Total number of tokens in `samples`, padding excluded."""
    return sum(len(sample) for sample in samples)
