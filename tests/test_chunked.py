"""ops/chunked.py: chunked clustering equals the unchunked path, outputs and gradients."""
import pytest
import torch

from ops.chunked import early_batchnorms, freeze_early_batchnorm, shift_halo
from ops.models import TSN


def make_pair(method: str, chunk: int, after: str = 'layer1', g: int = 3):
    torch.manual_seed(0)
    kw = dict(base_model='resnet18', pretrain='scratch', is_shift=True, cluster=method, num_frames=10,
              cluster_after=after, partial_bn=False)
    plain = TSN(4, g, 'RGB', **kw).double().eval()
    chunked = TSN(4, g, 'RGB', chunk_frames=chunk, **kw).double().eval()
    chunked.load_state_dict(plain.state_dict())
    return plain, chunked


@pytest.mark.parametrize('method,chunk', [('uniform', 3), ('slope', 4), ('cumulative', 3), ('cumulative', 1)])
def test_chunked_equals_unchunked(method, chunk):
    plain, chunked = make_pair(method, chunk)
    x = torch.randn(2, 10 * 3, 16, 16, dtype=torch.float64)
    lengths = torch.tensor([10, 7])
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = plain(xa, lengths), chunked(xb, lengths)
    assert torch.allclose(ya, yb, atol=1e-10)
    assert torch.equal(plain.clustering.last_assign, chunked.clustering.last_assign)
    ya.square().sum().backward()
    yb.square().sum().backward()
    assert torch.allclose(xa.grad, xb.grad, atol=1e-10)
    for (name, pa), pb in zip(plain.named_parameters(), chunked.parameters()):
        assert torch.allclose(pa.grad, pb.grad, atol=1e-9), name


def test_chunked_after_layer2_needs_a_wider_halo():
    plain, chunked = make_pair('cumulative', 2, after='layer2')
    assert shift_halo(chunked.early_modules()) == 4  # resnet18: 2 shifted blocks in layer1, 2 in layer2
    x = torch.randn(1, 10 * 3, 16, 16, dtype=torch.float64)
    assert torch.allclose(plain(x), chunked(x), atol=1e-10)


def test_chunked_without_gradient():
    plain, chunked = make_pair('slope', 4)
    x = torch.randn(2, 30, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(plain(x), chunked(x), atol=1e-10)


def train_pair(chunk: int, freeze: bool, after: str = 'layer1'):
    torch.manual_seed(0)
    kw = dict(base_model='resnet18', pretrain='scratch', is_shift=True, cluster='cumulative', num_frames=10,
              cluster_after=after, partial_bn=False, dropout=0.0)
    plain = TSN(4, 3, 'RGB', **kw).double().train()
    chunked = TSN(4, 3, 'RGB', chunk_frames=chunk, **kw).double().train()
    chunked.load_state_dict(plain.state_dict())
    if freeze:
        freeze_early_batchnorm(plain)
        freeze_early_batchnorm(chunked)
    return plain, chunked


@pytest.mark.parametrize('chunk,after', [(3, 'layer1'), (4, 'layer2')])
def test_chunked_training_with_frozen_early_bn_equals_unchunked(chunk, after):
    """main.py --chunk_frames K --freeze_early_bn: the loss, every gradient and every BatchNorm statistic
    after the step are those of the unchunked training with --freeze_early_bn."""
    plain, chunked = train_pair(chunk, freeze=True, after=after)
    assert len(early_batchnorms(plain)) == 1 + 4 * (1 + (after == 'layer2')) + (after == 'layer2')
    x = torch.randn(2, 10 * 3, 16, 16, dtype=torch.float64)
    labels, lengths = torch.tensor([1, 3]), torch.tensor([10, 8])
    losses = []
    for model in (plain, chunked):
        loss = torch.nn.functional.cross_entropy(model(x, lengths), labels)
        loss.backward()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], abs=1e-12)
    for (name, pa), pb in zip(plain.named_parameters(), chunked.parameters()):
        assert (pa.grad is None) == (pb.grad is None) and (pa.grad is None or
                                                            torch.allclose(pa.grad, pb.grad, atol=1e-10)), name
    for (name, ba), bb in zip(plain.named_buffers(), chunked.buffers()):
        assert torch.allclose(ba.double(), bb.double(), atol=1e-12), name  # later BNs: one update each


def test_chunked_training_without_freezing_would_differ():
    """Why main.py refuses --chunk_frames in training without --freeze_early_bn: per-chunk statistics."""
    plain, chunked = train_pair(3, freeze=False)
    x = torch.randn(2, 10 * 3, 16, 16, dtype=torch.float64)
    assert not torch.allclose(plain(x), chunked(x), atol=1e-6)
