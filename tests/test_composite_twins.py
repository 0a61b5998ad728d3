"""Each fused op against its composite twin in minisum/ops/composite.py: same values, same gradients.

The twins are built from small ops that autograd differentiates one by one, so a test here
also runs the tasks those small ops belong to: `@task` names the fused op's task first (the
one graded), then those.
"""
import numpy as np
import pytest

from minisum import Tensor, ops
from minisum.ops import composite
from conftest import task, vary


def assert_twins_agree(fused, composite_op, arrays, rng):
    """Run both on the same float64 inputs; compare the outputs and every input's gradient."""
    fused_inputs = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    composite_inputs = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    fused_out, composite_out = fused(*fused_inputs), composite_op(*composite_inputs)
    np.testing.assert_allclose(fused_out.data, composite_out.data, rtol=1e-10, atol=1e-12)
    upstream = rng.standard_normal(fused_out.shape)
    fused_out.backward(upstream)
    composite_out.backward(upstream)
    for i, (a, b) in enumerate(zip(fused_inputs, composite_inputs)):
        np.testing.assert_allclose(a.grad, b.grad, rtol=1e-9, atol=1e-12, err_msg=f"gradient of input {i}")


@task("2.1", "1.1", "1.2", "1.3", "1.4", "1.5", "3.1")  # the twin picks the targets' entries by indexing
@pytest.mark.parametrize("ignore_index", [None, 0])
def test_cross_entropy(ignore_index, rng):
    targets = rng.integers(0, 6, size=(3, 4))
    targets[0, :3] = 0  # class 0 doubles as the pad id, as <|endoftext|> does in the paper
    assert_twins_agree(lambda z: ops.cross_entropy(z, targets, ignore_index=ignore_index),
                       lambda z: composite.cross_entropy_composite(z, targets, ignore_index=ignore_index),
                       [rng.standard_normal((3, 4, 6))], rng)


@task("2.1", "1.1", "1.2", "1.3", "1.4", "1.5")
@pytest.mark.parametrize("fused,twin", [(ops.softmax, composite.softmax_composite),
                                             (ops.log_softmax, composite.log_softmax_composite)],
                         ids=["softmax", "log_softmax"])
def test_softmax_and_log_softmax(fused, twin, rng):
    assert_twins_agree(fused, twin, [3 * rng.standard_normal((2, 3, 5))], rng)


@task("2.2", "1.1", "1.2", "1.3", "1.5")
def test_layer_norm(rng):
    arrays = [rng.standard_normal((2, 3, 5)), rng.standard_normal(5), rng.standard_normal(5)]
    assert_twins_agree(ops.layer_norm, composite.layer_norm_composite, arrays, rng)


@task("4.1", "1.1", "1.2", "1.3", "1.4", "1.5", "1.6")
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n_queries,n_keys", [(4, 4), (2, 5)])  # fewer queries: keys from a cache
def test_attention(causal, n_queries, n_keys, rng):
    arrays = [rng.standard_normal((2, n_queries, 6)), rng.standard_normal((2, n_keys, 6)),
              rng.standard_normal((2, n_keys, 6))]
    assert_twins_agree(lambda q, k, v: ops.attention(q, k, v, n_heads=3, causal=causal),
                       lambda q, k, v: composite.attention_composite(q, k, v, n_heads=3, causal=causal),
                       arrays, rng)


@task("3.2", "1.1", "1.2", "1.6")
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_cumsum(axis, rng):
    assert_twins_agree(lambda x: ops.cumsum(x, axis=axis), lambda x: composite.cumsum_composite(x, axis=axis),
                       [rng.standard_normal((vary(3), vary(4), vary(5)))], rng)
