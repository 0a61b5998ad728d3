"""The paper's representation analysis: how the hidden states change from layer to layer.

Every function takes the states of one model at the same N token positions, one (N, d)
array per layer, layer 0 being the output of the embedding:

    pca_2d               the states on the two directions of largest variance
    layer_cosine         mean cosine similarity of a token's states in consecutive layers
    participation_ratio  (sum λ)^2 / sum λ^2 over the covariance eigenvalues λ: about how
                         many directions the states really use (1 for a line, d if isotropic)
    plot_representations the figure: a PCA trajectory per model, then the two curves

NumPy only (the PCA is an eigendecomposition of the covariance); matplotlib is imported
inside the plot function.
"""
import string

import numpy as np


def _centered_and_covariance(points):
    """The rows of `points` (N, d) centred, and their covariance matrix (d, d), in float64."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[0] < 2:
        raise ValueError(f"need an (N, d) array with N >= 2 points, got shape {points.shape}")
    centered = points - points.mean(axis=0)
    return centered, centered.T @ centered / (points.shape[0] - 1)


def pca_2d(points):
    """(N, d) -> (N, 2): the centered points projected on the two principal directions.

    The first column has the largest variance. The sign of each direction is arbitrary.
    """
    centered, covariance = _centered_and_covariance(points)
    _, vectors = np.linalg.eigh(covariance)  # eigenvalues ascending
    return centered @ vectors[:, ::-1][:, :2]


def participation_ratio(points):
    """(sum λ)^2 / sum λ^2 over the eigenvalues λ of the covariance of `points` (N, d).

    Between 1 (all variance along one direction) and d (the same variance in every
    direction); 0 when the points do not vary at all.
    """
    eigenvalues = np.clip(np.linalg.eigvalsh(_centered_and_covariance(points)[1]), 0, None)  # tiny negatives are rounding
    squares = (eigenvalues ** 2).sum()
    return float(eigenvalues.sum() ** 2 / squares) if squares > 0 else 0.0


def layer_cosine(layers):
    """[(N, d)] * (L + 1) -> (L,): mean over the N positions of cos(state in layer l, in layer l + 1)."""
    layers = [np.asarray(states, dtype=np.float64) for states in layers]
    unit = [states / np.maximum(np.linalg.norm(states, axis=1, keepdims=True), 1e-12) for states in layers]
    return np.array([(a * b).sum(axis=1).mean() for a, b in zip(unit[:-1], unit[1:])])


def summarize(layers):
    """The two curves of the figure for one model, as plain lists (for results.json)."""
    return {"layer_cosine": layer_cosine(layers).tolist(),
            "participation_ratio": [participation_ratio(layer) for layer in layers]}


def plot_representations(states, path, title=""):
    """Write the figure for {model name: [(N, d) per layer]} to `path` (PNG).

    Top row, one panel per model ((a), (b), (c) for three models): the 2-D PCA of all its
    layers' states, coloured by layer, with arrows between the layer means. Bottom row, all
    models together, lettered next ((d), (e)): cosine similarity between consecutive layers,
    participation ratio per layer.
    """
    from matplotlib.ticker import MaxNLocator

    from minisum.run.runtime import pyplot
    plt = pyplot()

    n = len(states)
    letters = iter(string.ascii_lowercase)  # panel labels, top row first
    fig = plt.figure(figsize=(5 * max(n, 2), 9))
    grid = fig.add_gridspec(2, 2 * n)  # top: n panels of 2 columns; bottom: 2 panels of n columns
    for i, (name, layers) in enumerate(states.items()):
        ax = fig.add_subplot(grid[0, 2 * i:2 * i + 2])
        coords = pca_2d(np.concatenate(layers)).reshape(len(layers), -1, 2)  # (L + 1, N, 2)
        colors = plt.cm.viridis(np.linspace(0, 1, len(layers)))
        for depth, (points, color) in enumerate(zip(coords, colors)):
            label = "embedding" if depth == 0 else f"block {depth}"
            ax.scatter(points[:, 0], points[:, 1], s=2, color=color, alpha=0.3, label=label)
        means = coords.mean(axis=1)
        for start, end in zip(means[:-1], means[1:]):
            ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="->", color="black"))
        ax.set(title=f"({next(letters)}) PCA of the hidden states: {name}", xlabel="PC1", ylabel="PC2")
        legend = ax.legend(markerscale=4, fontsize="small")
        for handle in legend.legend_handles:
            handle.set_alpha(1)

    curves = {name: summarize(layers) for name, layers in states.items()}
    cosine_ax = fig.add_subplot(grid[1, :n])
    ratio_ax = fig.add_subplot(grid[1, n:])
    for name, curve in curves.items():
        cosine_ax.plot(np.arange(1, len(curve["layer_cosine"]) + 1), curve["layer_cosine"], marker="o", label=name)
        ratios = curve["participation_ratio"]
        ratio_ax.plot(np.arange(len(ratios)), ratios, marker="o", label=name)
    cosine_ax.set(title=f"({next(letters)}) cosine similarity, layer l - 1 to l", xlabel="layer l (0 = embedding)",
                  ylabel="mean cosine similarity")
    ratio_ax.set(title=f"({next(letters)}) participation ratio", xlabel="layer (0 = embedding)", ylabel="(sum λ)² / sum λ²")
    for ax in (cosine_ax, ratio_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return curves
