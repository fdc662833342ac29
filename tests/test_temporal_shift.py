"""ops/temporal_shift.py: the shift equals its definition (TSM paper, Fig. 1b)."""
import torch

from archs import build_backbone
from ops.temporal_shift import TemporalShift, insert_temporal_shift, temporal_context, temporal_shift


def reference_shift(x: torch.Tensor, t: int, fold_div: int) -> torch.Tensor:
    """Per-element definition, written with loops."""
    nt, c, h, w = x.shape
    v = x.view(nt // t, t, c, h, w)
    out = torch.zeros_like(v)
    fold = c // fold_div
    for n in range(v.shape[0]):
        for i in range(t):
            for ch in range(c):
                if ch < fold:
                    out[n, i, ch] = v[n, i + 1, ch] if i + 1 < t else 0
                elif ch < 2 * fold:
                    out[n, i, ch] = v[n, i - 1, ch] if i > 0 else 0
                else:
                    out[n, i, ch] = v[n, i, ch]
    return out.view(nt, c, h, w)


def test_shift_matches_definition():
    x = torch.randn(2 * 5, 16, 3, 2)
    for div in (4, 8):
        assert torch.equal(temporal_shift(x, 5, div), reference_shift(x, 5, div))


def test_shift_moves_one_eighth_each_way_and_keeps_the_rest():
    t, c = 4, 16
    x = torch.arange(t, dtype=torch.float).view(1, t, 1, 1, 1).expand(1, t, c, 1, 1).reshape(t, c, 1, 1) + 1
    y = temporal_shift(x, t, 8).view(t, c)
    assert torch.equal(y[:, 0], torch.tensor([2., 3., 4., 0.]))  # frame i sees frame i+1
    assert torch.equal(y[:, 2], torch.tensor([0., 1., 2., 3.]))  # frame i sees frame i-1
    assert torch.equal(y[:, 4:], x.view(t, c)[:, 4:])


def test_lengths_stop_padding_from_leaking_into_the_last_real_frame():
    x = torch.randn(2 * 6, 8, 2, 2)
    lengths = torch.tensor([6, 4])
    y = temporal_shift(x, 6, 8, lengths).view(2, 6, 8, 2, 2)
    short = temporal_shift(x.view(2, 6, 8, 2, 2)[1, :4].reshape(4, 8, 2, 2), 4, 8).view(4, 8, 2, 2)
    assert torch.equal(y[1, :4], short)
    assert torch.equal(y[0], temporal_shift(x.view(2, 6, 8, 2, 2)[0].reshape(6, 8, 2, 2), 6, 8).view(6, 8, 2, 2))


def test_shift_is_differentiable_and_traceable():
    x = torch.randn(8, 8, 2, 2, requires_grad=True)
    temporal_shift(x, 4, 8).sum().backward()
    assert x.grad is not None
    traced = torch.jit.trace(lambda a: temporal_shift(a, 4, 8), x.detach())
    x2 = torch.randn(8, 8, 2, 2)
    assert torch.equal(traced(x2), temporal_shift(x2, 4, 8))


def test_make_temporal_shift_wraps_every_block_with_tsm_names():
    net, layout = build_backbone('resnet18', 'scratch')
    insert_temporal_shift(net, layout, 8, n_div=8, place='blockres')
    names = dict(net.named_parameters())
    assert 'layer1.0.conv1.net.weight' in names and 'layer4.1.conv1.net.weight' in names
    assert sum(isinstance(m, TemporalShift) for m in net.modules()) == 8


def test_resnet101_shifts_every_second_block_as_tsm():
    net, layout = build_backbone('resnet101', 'scratch')
    insert_temporal_shift(net, layout, 8, place='blockres')
    shifted = [i for i, b in enumerate(net.layer3) if isinstance(b.conv1, TemporalShift)]
    assert shifted == list(range(0, 23, 2))


def test_temporal_pool_halves_time_before_layer2():
    from ops.temporal_shift import TemporalPool, current_context
    net, layout = build_backbone('resnet18', 'scratch')
    insert_temporal_shift(net, layout, 8, place='blockres', temporal_pool=True)
    assert isinstance(net.layer2, TemporalPool)
    seen = []  # the time length each of layer2's shifts works with
    net.layer2.net[0].conv1.register_forward_pre_hook(lambda m, args: seen.append(current_context(m.n_segment)[0]))
    x = torch.randn(2 * 8, 64, 8, 8)
    with temporal_context(8):
        assert net.layer2(x).shape == (2 * 4, 128, 4, 4)
    assert seen == [4]
