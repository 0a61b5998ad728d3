"""minisum.draw_graph: a PNG of exactly the ops that backward() visits."""
import numpy as np
import pytest

import minisum
from conftest import on_device
from minisum.autograd import Function
from minisum.models import LanguageModel

pytest.importorskip("matplotlib")
pytestmark = pytest.mark.needs_engine  # the graph is a whole model's: code of every task


def subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)


def test_draws_the_ops_backward_visits(tmp_path, monkeypatch):
    minisum.seed(0)
    model = LanguageModel(vocab_size=20, d_model=8, n_layers=2, n_heads=2, max_len=6, mixer="hybrid")
    ids = on_device(np.random.default_rng(0).integers(1, 20, (2, 7)))
    loss, _ = model.loss(ids[:, :-1], ids[:, 1:], pad_id=0)

    drawn = minisum.draw_graph(loss, tmp_path / "graph.png", names=model.named_parameters())

    visited = []
    for cls in subclasses(Function):
        if "backward" in vars(cls):
            def spy(self, grad_out, original=cls.backward):
                visited.append(self)
                return original(self, grad_out)
            monkeypatch.setattr(cls, "backward", spy)
    loss.backward()
    assert [id(fn) for fn in drawn] == [id(fn) for fn in visited]
    assert {type(fn).__name__ for fn in drawn} >= {"Embedding", "CumSum", "Attention", "LayerNorm"}
    assert (tmp_path / "graph.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_tensor_without_a_graph_is_refused(tmp_path):
    leaf = minisum.tensor(np.ones(3), requires_grad=True)
    with pytest.raises(ValueError, match="nothing to draw"):
        minisum.draw_graph(leaf, tmp_path / "graph.png")
    assert not (tmp_path / "graph.png").exists()


def test_a_graph_that_backward_released_is_refused(tmp_path):
    x = minisum.tensor(np.ones(3), requires_grad=True)
    square_sum = (x * x).sum()
    square_sum.backward(free_graph=True)
    with pytest.raises(ValueError, match="released"):
        minisum.draw_graph(square_sum, tmp_path / "graph.png")
    assert not (tmp_path / "graph.png").exists()
