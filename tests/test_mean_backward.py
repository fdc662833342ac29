"""The mean's backward ways (ops/mean_backward.py) against autograd's batched matmul."""
import pytest
import torch

from ops import mean_backward
from ops.clustering import TemporalClustering, aggregate, cumulative_assign, slope_assign, uniform_assign

WAYS = ['gather', 'compiled']


def _grads(x, assign, G, lengths, backward, full=False, upstream=None):
    leaf = x.clone().requires_grad_()
    out = aggregate(leaf, assign, G, lengths, backward=backward, full=full)
    out.backward(upstream if upstream is not None else torch.ones_like(out))
    return out.detach(), leaf.grad


def _cases(gen):
    """(T, G, lengths) with full videos, padding, videos shorter than G and T < G."""
    return [(12, 4, None), (11, 4, torch.tensor([11, 7, 4, 2])), (4, 7, torch.tensor([1, 2, 3, 4])),
            (9, 3, torch.tensor([9, 9, 1]))]


@pytest.mark.parametrize('way', WAYS)
@pytest.mark.parametrize('rule', ['uniform', 'slope', 'cumulative'])
def test_ways_equal_the_matmul_in_float64(way, rule):
    gen = torch.Generator().manual_seed(0)
    for T, G, lengths in _cases(gen):
        n = 4 if lengths is None else len(lengths)
        x = torch.randn(n, T, 3, 2, 2, generator=gen, dtype=torch.float64)
        dist = torch.rand(n, T - 1, generator=gen)
        assign = (uniform_assign(n, T, G, lengths) if rule == 'uniform'
                  else {'slope': slope_assign, 'cumulative': cumulative_assign}[rule](dist, G, lengths))
        upstream = torch.randn(n, G, 3, 2, 2, generator=gen, dtype=torch.float64)
        ref_out, ref_grad = _grads(x, assign, G, lengths, 'matmul', upstream=upstream)
        out, grad = _grads(x, assign, G, lengths, way, upstream=upstream)
        assert torch.equal(out, ref_out)  # the forward is the same bmm
        torch.testing.assert_close(grad, ref_grad, rtol=1e-12, atol=1e-12)
        if lengths is not None:  # padding frames get no gradient
            pad = torch.arange(T)[None, :] >= lengths[:, None]
            assert grad[pad].abs().sum() == 0
        assert not mean_backward.compiled_failed()


def test_empty_clusters_reach_their_repeated_frame():
    """L = 2, G = 5: clusters 0, 1, 2 average frame 0 and 3, 4 frame 1, so frame 0 gets the gradient of three
    clusters and frame 1 of two (only two of them are in the assignment: the rest come from the repeats)."""
    x = torch.arange(6.).reshape(1, 6, 1)
    lengths = torch.tensor([2])
    assign = uniform_assign(1, 6, 5, lengths)
    upstream = torch.tensor([[[1.], [10.], [100.], [1000.], [10000.]]])
    for way in ['matmul'] + WAYS:
        _, grad = _grads(x, assign, 5, lengths, way, upstream=upstream)
        assert grad.flatten().tolist() == [111., 11000., 0., 0., 0., 0.], way


def test_full_skips_only_the_empty_term():
    """full=True is exact when no cluster is empty, and wrong (drops the repeats) when one is: the flag
    matters, so TemporalClustering must only set it when the rules guarantee it."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 10, 4, generator=gen, dtype=torch.float64)
    assign = cumulative_assign(torch.rand(2, 9, generator=gen), 4)
    _, ref = _grads(x, assign, 4, None, 'matmul')
    _, got = _grads(x, assign, 4, None, 'gather', full=True)
    torch.testing.assert_close(got, ref)
    lengths = torch.tensor([2, 10])
    assign = cumulative_assign(torch.rand(2, 9, generator=gen), 4, lengths)
    _, ref = _grads(x, assign, 4, lengths, 'matmul')
    _, got = _grads(x, assign, 4, lengths, 'gather', full=True)
    assert not torch.allclose(got, ref)


@pytest.mark.parametrize('way', WAYS)
def test_low_precision_matches_the_matmul_bit_for_bit(way):
    """One cluster per frame: every frame's gradient is one product, rounded once, as in the bmm."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 12, 5, 3, 3, generator=gen).to(torch.bfloat16)
    assign = cumulative_assign(torch.rand(2, 11, generator=gen), 5)
    upstream = torch.randn(2, 5, 5, 3, 3, generator=gen).to(torch.bfloat16)
    _, ref = _grads(x, assign, 5, None, 'matmul', upstream=upstream)
    _, got = _grads(x, assign, 5, None, way, full=True, upstream=upstream)
    assert got.dtype == torch.bfloat16 and torch.equal(got, ref)


@pytest.mark.parametrize('way', WAYS)
def test_module_under_autocast(way):
    """TemporalClustering with each backward under CPU bf16 autocast: same output and gradient as the matmul."""
    gen = torch.Generator().manual_seed(3)
    frames = torch.randn(3 * 8, 4, 5, 5, generator=gen)
    lengths = torch.tensor([8, 5, 2])
    results = []
    for backward in ('matmul', way):
        leaf = frames.clone().requires_grad_()
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = TemporalClustering('slope', 4, backward=backward)(leaf * 1, 8, lengths)
        out.float().square().sum().backward()
        results.append((out, leaf.grad))
    assert results[1][0].dtype == results[0][0].dtype == torch.bfloat16
    assert torch.equal(results[1][0], results[0][0])
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-2, atol=1e-2)


def test_unknown_backward_is_refused():
    with pytest.raises(ValueError, match='mean backward'):
        TemporalClustering('cumulative', 4, backward='scatter')
    with pytest.raises(ValueError, match='mean backward'):
        aggregate(torch.randn(1, 4, 2, requires_grad=True), torch.zeros(1, 4, dtype=torch.long), 2,
                  backward='scatter')
