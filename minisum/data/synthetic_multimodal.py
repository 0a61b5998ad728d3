"""A small synthetic stand-in for Civil Comments, to run the multimodal regression
(docs/paper.md section 3) offline. Same column names as the real set: `text`, the four
numeric inputs `toxicity, severe_toxicity, obscene, threat`, target `identity_attack`.

Construction (one row; `rng = np.random.default_rng(seed)`):
* text: 3 to 8 words drawn from `FILLER_WORDS`, plus each word of `SIGNAL_WORDS`
  repeated Poisson(`SIGNAL_RATE`) times, shuffled; first word capitalised, ending in
  "." (so the text standardisation has something to do);
* numbers: each of the four independently Uniform(0, 1);
* identity_attack = f(text) + g(numbers) + Normal(0, NOISE_SD), where
  f = sum of SIGNAL_WORDS[w] * count(w) and g = sum of NUMERIC_WEIGHTS[c] * value(c)
  (`obscene` has weight 0: an input that carries nothing);
* every number is rounded to 4 decimals, so the CSV holds exactly the generated values.

Text and numbers are independent, so the variance splits:
Var f = SIGNAL_RATE * sum w² = 0.8 * 0.0533 = 0.0426, Var g = sum v² / 12 = 0.56 / 12 = 0.0467,
noise 0.07² = 0.0049, total 0.0942. The best possible R² (the oracle, knowing f and g) is
about 0.45 from the text alone, 0.50 from the numbers alone and 0.95 from both. A
linear model on word counts reaches f exactly and one on the numbers reaches g, so
ridge regression gets close to these (tests/test_data_mm.py checks it).
"""
import csv

import numpy as np

FILLER_WORDS = ("the", "a", "this", "that", "people", "comment", "article", "city", "news", "today",
                "think", "really", "just", "about", "government", "story", "read", "good", "time",
                "year", "they", "we", "said", "more")
SIGNAL_WORDS = {"hate": 0.15, "attack": 0.12, "slur": 0.10, "respect": -0.08}
NUMERIC_WEIGHTS = {"toxicity": 0.6, "severe_toxicity": 0.2, "obscene": 0.0, "threat": 0.4}
SIGNAL_RATE = 0.8
NOISE_SD = 0.07
COLUMNS = ("text", *NUMERIC_WEIGHTS, "identity_attack")


def make_synthetic_table(n_rows, seed=0):
    """{column name: list} with the columns of `COLUMNS`, `n_rows` rows."""
    rng = np.random.default_rng(seed)
    texts, text_part = [], np.zeros(n_rows)
    for row in range(n_rows):
        words = list(rng.choice(FILLER_WORDS, size=rng.integers(3, 9)))
        for word, weight in SIGNAL_WORDS.items():
            count = rng.poisson(SIGNAL_RATE)
            words += [word] * count
            text_part[row] += weight * count
        rng.shuffle(words)
        texts.append(" ".join(words).capitalize() + ".")
    numbers = {name: rng.uniform(0.0, 1.0, n_rows).round(4) for name in NUMERIC_WEIGHTS}
    numeric_part = sum(NUMERIC_WEIGHTS[name] * values for name, values in numbers.items())
    target = (text_part + numeric_part + rng.normal(0.0, NOISE_SD, n_rows)).round(4)
    return {"text": texts, **{name: values.tolist() for name, values in numbers.items()},
            "identity_attack": target.tolist()}


def write_table_csv(columns, path):
    """Write {column name: list} as a CSV file with a header row."""
    names = list(columns)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(names)
        writer.writerows(zip(*(columns[name] for name in names)))
