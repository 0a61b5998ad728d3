"""Multimodal regression data: tables, the 60/20/20 split, the synthetic set, ridge."""
import math
from pathlib import Path

import numpy as np
import pytest


from minisum.data import synthetic_multimodal as synth  # noqa: E402
from minisum.data.keras_text import TextVectorizer  # noqa: E402
from minisum.data.tabular import (  # noqa: E402
    NUMERIC_COLS, load_civil_comments, load_table, split_60_20_20, table_from_columns)
from minisum.errors import UserError  # noqa: E402
from minisum.ridge import regression_metrics, ridge_fit, ridge_predict  # noqa: E402

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "mm" / "synthetic_200.csv"
HEADER = "text,toxicity,severe_toxicity,obscene,threat,identity_attack\n"


# --- ridge -----------------------------------------------------------------------------

def test_ridge_matches_lstsq_on_the_augmented_system():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4)) + 3.0
    y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 7.0 + rng.normal(size=30)
    alpha = 2.5
    w, b = ridge_fit(X, y, alpha)
    # Penalised least squares on centred data: [[Xc], [sqrt(alpha) I]] w = [yc, 0]
    Xc, yc = X - X.mean(axis=0), y - y.mean()
    A = np.vstack([Xc, math.sqrt(alpha) * np.eye(4)])
    expected_w = np.linalg.lstsq(A, np.r_[yc, np.zeros(4)], rcond=None)[0]
    np.testing.assert_allclose(w, expected_w, rtol=1e-10)
    np.testing.assert_allclose(b, y.mean() - X.mean(axis=0) @ expected_w, rtol=1e-10)
    np.testing.assert_allclose(ridge_predict(X[:2], w, b), X[:2] @ w + b)


def test_ridge_intercept_is_not_penalised():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    w, b = ridge_fit(X, y, alpha=10.0)
    w_shifted, b_shifted = ridge_fit(X, y + 100.0, alpha=10.0)
    np.testing.assert_allclose(w_shifted, w, atol=1e-12)  # a shift of y moves only the intercept
    np.testing.assert_allclose(b_shifted, b + 100.0)


def test_regression_metrics_by_hand():
    # errors 0, 0, 0, -2: MSE 4/4 = 1, MAE 2/4 = 0.5; mean 2.5, SS_tot = 2.25+0.25+0.25+2.25 = 5, R² = 1 - 4/5
    m = regression_metrics([1, 2, 3, 4], [1, 2, 3, 6])
    assert m == pytest.approx({"mse": 1.0, "rmse": 1.0, "mae": 0.5, "r2": 0.2})
    assert regression_metrics([2, 2], [2, 2])["r2"] == 1.0
    assert regression_metrics([2, 2], [2, 3])["r2"] == 0.0


# --- the 60/20/20 split ----------------------------------------------------------------

def test_split_sizes_follow_ceil_of_test_fraction():
    assert [len(p) for p in split_60_20_20(10000)] == [6000, 2000, 2000]
    # n = 7: test ceil(1.4) = 2; the rest 5: validation ceil(1.25) = 2; train 3
    train, val, test = split_60_20_20(7)
    assert (len(train), len(val), len(test)) == (3, 2, 2)
    assert sorted(np.r_[train, val, test].tolist()) == list(range(7))


def test_split_is_scikit_learns_shuffle_split():
    # ShuffleSplit: perm = RandomState(42).permutation(m); test = perm[:n_test], train = perm[n_test:]
    n = 50
    perm = np.random.RandomState(42).permutation(n)
    train, val, test = split_60_20_20(n)
    np.testing.assert_array_equal(test, perm[:10])
    rest = perm[10:]
    perm2 = np.random.RandomState(42).permutation(40)
    np.testing.assert_array_equal(val, rest[perm2[:10]])
    np.testing.assert_array_equal(train, rest[perm2[10:]])


def test_split_too_few_rows():
    with pytest.raises(UserError, match="too few"):
        split_60_20_20(2)  # test 1, validation 1, train 0


# --- tables ----------------------------------------------------------------------------

def test_load_table_csv_fixture():
    data = load_table(FIXTURE)
    assert len(data.texts) == 200 and data.numeric.shape == (200, 4) and data.target.shape == (200,)
    assert data.numeric_cols == NUMERIC_COLS and data.note == ""
    first = FIXTURE.read_text(encoding="utf-8").splitlines()[1].split(",")
    assert data.texts[0] == first[0]
    np.testing.assert_array_equal(data.numeric[0], [float(v) for v in first[1:5]])
    assert data.target[0] == float(first[5])
    assert len(load_table(FIXTURE, rows=30).texts) == 30


def test_load_table_jsonl_and_parquet_agree_with_csv(tmp_path):
    import datasets

    table = datasets.load_dataset("csv", data_files=str(FIXTURE), split="train")
    table.to_json(tmp_path / "t.jsonl")
    table.to_parquet(tmp_path / "t.parquet")
    csv_data = load_table(FIXTURE)
    for name in ("t.jsonl", "t.parquet"):
        data = load_table(tmp_path / name)
        assert data.texts == csv_data.texts
        np.testing.assert_array_equal(data.numeric, csv_data.numeric)


def test_missing_columns_are_named_with_the_columns_found(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("comment,toxicity\nhi,0.1\n")
    with pytest.raises(UserError) as error:
        load_table(path)
    message = str(error.value)
    assert "missing column(s) text, severe_toxicity, obscene, threat, identity_attack" in message
    assert "found are comment, toxicity" in message


def test_bad_numeric_rows_are_dropped_with_a_warning(tmp_path, capsys):
    good = [f"row {i},0.1,0.2,0.3,0.4,0.5\n" for i in range(12)]
    bad = ["x,abc,0,0,0,0\n", "y,,0,0,0,0\n", "z,0,0,0,0,nan\n"]
    path = tmp_path / "t.csv"
    path.write_text(HEADER + "".join(good[:2] + bad + good[2:]))
    data = load_table(path)
    assert len(data.texts) == 12 and "x" not in data.texts
    warning = capsys.readouterr().err
    assert "dropped 3 of 15 rows" in warning and "data rows 3, 4, 5" in warning
    assert "dropped 3" in data.note


def test_too_few_rows_after_dropping(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(HEADER + "a,0.1,0.2,0.3,0.4,0.5\n" * 3 + "b,bad,0,0,0,0\n" * 10)
    with pytest.raises(UserError, match="3 usable rows"):
        load_table(path)


def test_malformed_csv_names_the_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(HEADER + "a,0.1,0.2,0.3,0.4,0.5\n" + "b,1,2,3,4,5,6,7\n")
    with pytest.raises(UserError, match=r"t\.csv: cannot read it as csv \(.*line 3"):
        load_table(path)


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(UserError, match="unknown table format"):
        load_table(tmp_path / "t.xlsx")
    with pytest.raises(UserError, match="no such file"):
        load_table(tmp_path / "t.csv")


def test_civil_comments_offline_points_at_data_file():
    with pytest.raises(UserError, match="--data-file") as error:
        load_civil_comments(rows=10)
    assert "\n" not in str(error.value)


# --- the synthetic set -----------------------------------------------------------------

def test_fixture_is_the_generator_output(tmp_path):
    synth.write_table_csv(synth.make_synthetic_table(200, seed=0), tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_bytes() == FIXTURE.read_bytes()


def test_text_and_numbers_each_explain_part_and_together_most():
    table = synth.make_synthetic_table(2000, seed=3)
    data = table_from_columns(table, "text", NUMERIC_COLS, "identity_attack", source="synthetic")
    train, _, test = split_60_20_20(len(data.texts))
    vectorizer = TextVectorizer().fit([data.texts[i] for i in train])
    ids = vectorizer.transform(data.texts)
    counts = np.zeros((len(ids), vectorizer.vocab_size))
    np.add.at(counts, (np.repeat(np.arange(len(ids)), ids.shape[1]), ids.ravel()), 1.0)
    counts = counts[:, 2:]  # padding and OOV columns carry no word
    features = {"text": counts, "numbers": data.numeric, "both": np.hstack([counts, data.numeric])}
    r2 = {}
    for name, X in features.items():
        w, b = ridge_fit(X[train], data.target[train], alpha=1.0)
        r2[name] = regression_metrics(data.target[test], ridge_predict(X[test], w, b))["r2"]
    # Oracle R² from the construction (the module docstring): ~0.45, ~0.50, ~0.95.
    f = sum(weight * np.array([t.lower().rstrip(".").split().count(word) for t in data.texts])
            for word, weight in synth.SIGNAL_WORDS.items())
    g = data.numeric @ np.array([synth.NUMERIC_WEIGHTS[c] for c in NUMERIC_COLS])
    y = data.target
    oracle = {name: 1 - np.var(y - part) / np.var(y) for name, part in (("text", f), ("numbers", g), ("both", f + g))}
    assert oracle["text"] == pytest.approx(0.45, abs=0.05)
    assert oracle["numbers"] == pytest.approx(0.50, abs=0.05)
    assert oracle["both"] == pytest.approx(0.95, abs=0.02)
    for name in r2:
        assert r2[name] == pytest.approx(oracle[name], abs=0.07)
    assert r2["both"] > max(r2["text"], r2["numbers"]) + 0.3
