"""ops/train_step.py: the step updates the weights, clips the true gradient, runs through an active scaler,
returns the loss it trained on; autocast follows --amp; the timer splits wall time into data and compute."""
import copy
import time

import pytest
import torch
import torch.nn as nn

from ops.train_step import StepTimer, autocast, grad_scaler, train_step

CPU = torch.device('cpu')


class Tiny(nn.Module):
    """A model with TSN's call signature: (N, D) frames (+ lengths, ignored) -> (N, 3) scores."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor, lengths=None) -> torch.Tensor:
        return self.fc(x)


def batch(n: int = 8):
    g = torch.Generator().manual_seed(1)
    return 10 * torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def grad_norm(model: nn.Module) -> float:
    return torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])).item()


def sgd(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.1)


def test_a_step_changes_the_weights_and_returns_the_loss_it_trained_on():
    model = Tiny()
    before = copy.deepcopy(model)
    x, y = batch()
    output, loss = train_step(model, sgd(model), grad_scaler('none', CPU), x, y)
    assert torch.equal(output, before(x).detach()) and not output.requires_grad and not loss.requires_grad
    assert loss.item() == pytest.approx(nn.functional.cross_entropy(before(x), y).item(), rel=1e-6)
    assert not torch.equal(model.fc.weight, before.fc.weight)
    expected = before.fc.weight - 0.1 * torch.autograd.grad(nn.functional.cross_entropy(before(x), y),
                                                            before.fc.weight)[0]
    torch.testing.assert_close(model.fc.weight, expected)


def test_clipping_caps_the_gradient_norm():
    x, y = batch()
    free = Tiny()
    train_step(free, sgd(free), grad_scaler('none', CPU), x, y)
    assert grad_norm(free) > 1.0  # otherwise the cap below would prove nothing
    clipped = Tiny()
    train_step(clipped, sgd(clipped), grad_scaler('none', CPU), x, y, clip=0.5)
    assert grad_norm(clipped) == pytest.approx(0.5, rel=1e-4)


def test_an_active_scaler_clips_the_unscaled_gradient_and_steps_as_without_it():
    x, y = batch()
    plain, scaled = Tiny(), Tiny()
    train_step(plain, sgd(plain), grad_scaler('none', CPU), x, y, clip=0.5)
    scaler = torch.amp.GradScaler('cpu', init_scale=2.0 ** 10)
    assert scaler.is_enabled()
    _, loss = train_step(scaled, sgd(scaled), scaler, x, y, clip=0.5)
    assert grad_norm(scaled) == pytest.approx(0.5, rel=1e-4)  # clipped after unscaling, not at 1024 x
    torch.testing.assert_close(scaled.fc.weight, plain.fc.weight)
    assert scaler.get_scale() == 2.0 ** 10 and loss.dtype == torch.float32


def test_keep_grads_zeroes_in_place_and_the_default_frees():
    x, y = batch()
    model = Tiny()
    optimizer = sgd(model)
    train_step(model, optimizer, grad_scaler('none', CPU), x, y, keep_grads=True)
    grad = model.fc.weight.grad
    train_step(model, optimizer, grad_scaler('none', CPU), x, y, keep_grads=True)
    assert model.fc.weight.grad is grad
    train_step(model, optimizer, grad_scaler('none', CPU), x, y)
    assert model.fc.weight.grad is not grad


def test_bf16_step_computes_under_autocast_and_the_loss_in_float32():
    x, y = batch()
    model = Tiny()
    output, loss = train_step(model, sgd(model), grad_scaler('bf16', CPU), x, y, amp='bf16')
    assert output.dtype == torch.bfloat16 and loss.dtype == torch.float32
    assert not grad_scaler('bf16', CPU).is_enabled() and grad_scaler('fp16', CPU).is_enabled()


def test_autocast_follows_amp_and_names_an_unknown_choice():
    with autocast('bf16', CPU):
        assert torch.is_autocast_enabled('cpu') and torch.get_autocast_dtype('cpu') == torch.bfloat16
    with autocast('none', CPU):
        assert not torch.is_autocast_enabled('cpu')
    with pytest.raises(ValueError, match="'fp8'.*none, fp16, bf16"):
        autocast('fp8', CPU)


class SlowLoader:
    """Yields ``n`` items, sleeping ``wait`` seconds before each (a loader waiting on its workers)."""

    def __init__(self, n: int, wait: float) -> None:
        self.n, self.wait = n, wait

    def __iter__(self):
        for i in range(self.n):
            time.sleep(self.wait)
            yield i


def test_timer_counts_the_loader_wait_as_data_and_the_rest_as_compute():
    timer = StepTimer()
    start = time.perf_counter()
    for _ in timer.batches(SlowLoader(4, 0.05)):
        time.sleep(0.1)  # the step
        timer.step_done()
    wall = time.perf_counter() - start
    totals = timer.totals()
    # generous bounds (a loaded machine oversleeps): the steps' 0.4 s counted as data would break the first
    assert 0.2 <= totals['data_s'] < 0.55 and 0.4 <= totals['compute_s']
    assert totals['data_s'] + totals['compute_s'] == pytest.approx(wall, abs=0.05)
    assert timer.data.count == timer.batch.count == 4 and timer.data.val >= 0.05 and timer.batch.val >= 0.15
