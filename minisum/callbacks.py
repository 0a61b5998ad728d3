"""Keras-style training callbacks used by the multimodal benchmark.

ReduceLROnPlateau: multiply the learning rate by `factor` after `patience` epochs without
improvement of the monitored loss. EarlyStopping: stop after `patience` epochs without
improvement and put back the best weights.
"""
from minisum import checks


class ReduceLROnPlateau:
    def __init__(self, optimizer, factor=0.1, patience=3, min_delta=0.0):
        checks.real("factor", factor, above=0, below=1)
        check_patience(patience, min_delta)
        self.optimizer, self.factor, self.patience, self.min_delta = optimizer, factor, patience, min_delta
        self.best, self.bad_epochs = float("inf"), 0

    def step(self, loss):
        """Record one epoch's validation loss; returns True when the rate was just reduced."""
        if loss < self.best - self.min_delta:
            self.best, self.bad_epochs = loss, 0
            return False
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            self.optimizer.lr *= self.factor
            self.bad_epochs = 0
            return True
        return False


class EarlyStopping:
    def __init__(self, model, patience=5, min_delta=0.0):
        check_patience(patience, min_delta)
        self.model, self.patience, self.min_delta = model, patience, min_delta
        self.best, self.bad_epochs, self.best_state, self.best_epoch = float("inf"), 0, None, None

    def step(self, loss, epoch):
        """Record one epoch's validation loss; returns True when training should stop."""
        if loss < self.best - self.min_delta:
            self.best, self.bad_epochs, self.best_epoch = loss, 0, epoch
            self.best_state = self.model.state_dict()
            return False
        self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def restore_best(self):
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)


def check_patience(patience, min_delta):
    checks.integer("patience", patience, minimum=0)
    checks.real("min_delta", min_delta, minimum=0)
