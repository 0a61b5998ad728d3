"""Ridge regression in closed form, the numeric-only baseline of the multimodal
experiment (docs/paper.md section 3), and the regression metrics it reports.

`ridge_fit` is scikit-learn's `Ridge(alpha)` with `fit_intercept=True`: the intercept is
not penalised, which is the same as centring X and y, solving the penalised problem
without intercept, and putting the means back into the intercept.
"""
import numpy as np

from minisum import checks


def ridge_fit(X, y, alpha=1.0):
    """(w, b) minimising ||y - X w - b||² + alpha ||w||², X (N, D), y (N,)."""
    checks.real("alpha", alpha, minimum=0)
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x_mean, y_mean = X.mean(axis=0), y.mean()
    Xc, yc = X - x_mean, y - y_mean
    w = np.linalg.solve(Xc.T @ Xc + alpha * np.eye(X.shape[1]), Xc.T @ yc)
    return w, y_mean - x_mean @ w


def ridge_predict(X, w, b):
    return np.asarray(X, dtype=np.float64) @ w + b


def regression_metrics(y_true, y_pred):
    """{"mse", "rmse", "mae", "r2"}. r2 = 1 - SS_res / SS_tot; for a constant y_true
    (SS_tot = 0) it is 1.0 if the prediction is exact and 0.0 otherwise, as scikit-learn's
    `r2_score` gives."""
    y_true = np.asarray(y_true, dtype=np.float64)
    error = y_true - np.asarray(y_pred, dtype=np.float64)
    ss_res = float(np.sum(error ** 2))
    mse = ss_res / error.size
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    if ss_tot == 0.0:
        r2 = 1.0 if ss_res == 0.0 else 0.0
    else:
        r2 = 1.0 - ss_res / ss_tot
    return {"mse": mse, "rmse": float(np.sqrt(mse)), "mae": float(np.mean(np.abs(error))), "r2": r2}
