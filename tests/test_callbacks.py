"""ReduceLROnPlateau and EarlyStopping on scripted validation-loss sequences.

The expected epochs are counted by hand from the Keras rules: an epoch improves when its
loss is below best - min_delta; `patience` non-improving epochs in a row trigger the
callback, and the plateau counter starts again after each reduction.
"""
from types import SimpleNamespace

import numpy as np
import pytest

from minisum.callbacks import EarlyStopping, ReduceLROnPlateau
from minisum.nn import Dense


def run_plateau(losses, lr=1e-4, **kwargs):
    """Feed `losses` one epoch at a time; returns the epochs where the rate dropped and the lr after each epoch."""
    optimizer = SimpleNamespace(lr=lr)
    plateau = ReduceLROnPlateau(optimizer, **kwargs)
    drops, rates = [], []
    for epoch, loss in enumerate(losses):
        if plateau.step(loss):
            drops.append(epoch)
        rates.append(optimizer.lr)
    return drops, rates


def test_plateau_reduces_after_patience_bad_epochs_and_counts_again():
    # epochs 0, 1 improve; 2, 3, 4 do not -> drop at 4; 5 improves; 6-8 -> drop at 8; 9-11 -> drop at 11
    losses = [1.0, 0.9, 0.95, 0.92, 0.91, 0.8, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85]
    drops, rates = run_plateau(losses, factor=0.1, patience=3)
    assert drops == [4, 8, 11]
    assert rates[3] == pytest.approx(1e-4)
    assert rates[4] == pytest.approx(1e-5)
    assert rates[10] == pytest.approx(1e-6)
    assert rates[11] == pytest.approx(1e-7)


def test_plateau_compares_with_the_best_loss_not_the_previous_one():
    # every epoch after the first beats its predecessor but not the best (0.5): no improvement
    drops, _ = run_plateau([0.5, 0.9, 0.8, 0.7], factor=0.1, patience=3)
    assert drops == [3]


def test_plateau_min_delta_ignores_tiny_improvements():
    # with min_delta 0.01, 0.995 / 0.992 / 0.991 are not improvements over 1.0 (drop at 3);
    # 0.985 is (best 0.985), and 0.984 / 0.983 / 0.980 are not over it (drop at 7)
    losses = [1.0, 0.995, 0.992, 0.991, 0.985, 0.984, 0.983, 0.980]
    drops, _ = run_plateau(losses, factor=0.5, patience=3, min_delta=0.01)
    assert drops == [3, 7]


def test_early_stopping_stops_at_the_patience_th_bad_epoch():
    stopper = EarlyStopping(Dense(2, 1), patience=5)
    losses = [0.5, 0.4, 0.45, 0.41, 0.42, 0.43, 0.44, 0.3]  # best at 1; bad 2..6; 0.3 is never reached
    stopped_at = next(epoch for epoch, loss in enumerate(losses) if stopper.step(loss, epoch))
    assert stopped_at == 6
    assert stopper.best_epoch == 1
    assert stopper.best == 0.4


def test_early_stopping_treats_nan_as_no_improvement():
    stopper = EarlyStopping(Dense(2, 1), patience=2)
    assert not stopper.step(1.0, 0)
    assert not stopper.step(float("nan"), 1)
    assert stopper.step(float("nan"), 2)
    assert stopper.best_epoch == 0


def test_early_stopping_restores_the_best_weights_despite_in_place_updates():
    model = Dense(2, 1)
    stopper = EarlyStopping(model, patience=3)
    losses = [0.9, 0.7, 0.8, 0.75, 0.72]
    for epoch, loss in enumerate(losses):
        for p in model.parameters():
            p.data[...] = epoch  # in place, as the optimizer updates weights
        if stopper.step(loss, epoch):
            break
    assert epoch == 4
    assert float(model.weight.data[0, 0]) == 4.0
    stopper.restore_best()
    assert np.all(model.weight.data == 1.0) and np.all(model.bias.data == 1.0)
    model.weight.data[...] = 7.0  # the restored weights must not share memory with the saved ones
    stopper.restore_best()
    assert np.all(model.weight.data == 1.0)


def test_plateau_and_early_stopping_together_as_in_the_paper():
    """lr x0.1 after 3 bad epochs, stop after 5: on a flat validation loss the rate drops once, then training stops."""
    optimizer = SimpleNamespace(lr=1e-4)
    model = Dense(2, 1)
    plateau, stopper = ReduceLROnPlateau(optimizer, factor=0.1, patience=3), EarlyStopping(model, patience=5)
    losses = [1.0, 0.8] + [0.9] * 10
    for epoch, loss in enumerate(losses):
        plateau.step(loss)
        if stopper.step(loss, epoch):
            break
    assert epoch == 6  # bad epochs 2..6
    assert optimizer.lr == pytest.approx(1e-5)  # dropped at epoch 4, and not again by epoch 6
