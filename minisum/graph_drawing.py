"""A picture of the graph that `backward()` will walk, drawn with matplotlib only.

    loss = model.loss(ids, targets)[0]
    minisum.draw_graph(loss, "graph.png", names=model.named_parameters())

Each op is a box with its output's shape. The tensors the graph starts from are boxes
too: orange when they require grad (the parameters: backward() fills their .grad), grey
when they do not (token ids, constants). Forward runs from the top down; backward() visits
the ops from the bottom up, in the order of `autograd._topological_order`, which this
drawing uses too.

matplotlib is imported when a graph is drawn, never by `import minisum`, and through its
Figure class rather than pyplot, so drawing changes no backend and opens no window.
"""
from minisum.autograd import _topological_order

COLORS = {"op": "#cfe2f3", "requires grad": "#f9cb9c", "no grad": "#e6e6e6"}


def draw_graph(tensor, path, names=None):
    """Draw the graph behind `tensor` to `path` (PNG, SVG or PDF, from the file name).

    `names` labels the leaves: a dict or (name, tensor) pairs, such as
    `model.named_parameters()`. Returns the ops (Functions) drawn, in the order backward()
    visits them.
    """
    if tensor.creator is None:
        raise ValueError("nothing to draw: this tensor was not made by an op on tensors that require grad")
    if tensor.creator.released:
        raise ValueError("nothing to draw: backward(free_graph=True) released this graph "
                         "(lm_train_step does); draw it before backward, or compute it again")
    try:
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
    except ImportError:
        raise ImportError("draw_graph needs matplotlib: pip install matplotlib") from None

    functions = _topological_order(tensor)  # the root's op first
    labels, kinds, depth, edges = _nodes_and_edges(tensor, functions, _leaf_names(names))
    position = _layout(depth, edges)

    levels = max(depth.values()) + 1
    widest = max(sum(1 for d in depth.values() if d == level) for level in range(levels))
    fig = Figure(figsize=(max(6.0, 1.4 * widest), max(3.0, 0.7 * levels + 1)))
    ax = fig.subplots()
    for source, target in edges:
        ax.annotate("", xy=position[target], xytext=position[source], zorder=1,
                    arrowprops=dict(arrowstyle="->", color="0.45", lw=0.7, shrinkA=11, shrinkB=11))
    for key, (x, y) in position.items():
        ax.text(x, y, labels[key], ha="center", va="center", fontsize=7, zorder=2,
                bbox=dict(boxstyle="round,pad=0.3", fc=COLORS[kinds[key]], ec="0.35", lw=0.6))
    half_width = max(abs(x) for x, _ in position.values()) + 0.8
    ax.set(xlim=(-half_width, half_width), ylim=(-0.6, levels - 0.4))
    ax.axis("off")
    ax.set_title(f"{len(functions)} ops: forward runs down, backward() walks them up", fontsize=9)
    ax.legend(handles=[Patch(fc=color, ec="0.35", label=kind) for kind, color in COLORS.items()],
              loc="lower left", fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return functions


def _leaf_names(names):
    pairs = names.items() if isinstance(names, dict) else (names or ())
    return {id(t): name for name, t in pairs}


def _nodes_and_edges(root, functions, leaf_names):
    """Label, kind and depth (longest path to the root's op, which has depth 0) of every node,
    and the edges (input node, op node). A node is an op or a leaf tensor, keyed by its id."""
    labels = {id(root.creator): f"{type(root.creator).__name__}\n{_shape(root)}"}
    kinds = {id(root.creator): "op"}
    depth = {id(root.creator): 0}
    edges = []
    for fn in functions:  # every consumer comes before the ops that feed it, so depth[id(fn)] is final
        for t in fn.inputs:
            if t.creator is not None:
                key, kinds[key] = id(t.creator), "op"
                labels[key] = f"{type(t.creator).__name__}\n{_shape(t)}"
            else:
                key, kinds[key] = id(t), "requires grad" if t.requires_grad else "no grad"
                labels[key] = _leaf_label(t, leaf_names)
            depth[key] = max(depth.get(key, 0), depth[id(fn)] + 1)
            edges.append((key, id(fn)))
    return labels, kinds, depth, edges


def _leaf_label(t, leaf_names):
    if id(t) in leaf_names:
        return f"{leaf_names[id(t)]}\n{_shape(t)}"
    if t.requires_grad:
        return _shape(t)
    if t.size == 1:
        return f"{t.item():g}"  # a constant such as the 2.0 of tok * (pos + 2.0)
    return f"{t.dtype}\n{_shape(t)}"  # token ids, targets


def _shape(t):
    return "(" + ", ".join(str(n) for n in t.shape) + ")"


def _layout(depth, edges):
    """(x, y) of every node. y is its depth: the root's op at the bottom, every edge pointing
    down. Within a row, nodes follow the mean x of the ops they feed (placed a row earlier),
    which keeps edges short."""
    consumers = {}
    for source, target in edges:
        consumers.setdefault(source, []).append(target)

    def mean_consumer_x(key):
        xs = [position[c][0] for c in consumers.get(key, [])]
        return sum(xs) / len(xs) if xs else 0.0

    position = {}
    for level in range(max(depth.values()) + 1):
        row = sorted((key for key, d in depth.items() if d == level), key=mean_consumer_x)
        for i, key in enumerate(row):
            position[key] = (i - (len(row) - 1) / 2, float(level))
    return position
