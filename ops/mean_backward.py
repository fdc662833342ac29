"""Ways to compute the backward of the cluster mean (``ops.clustering.aggregate``).

The mean is ``out[n, g] = sum_t W[n, g, t] x[n, t]`` with the ``(N, G, T)`` averaging weights of
``cluster_weights``, so its backward is ``grad_x[n, t] = sum_g W[n, g, t] grad_out[n, g]``: it writes a
gradient for every frame (T/G times more bytes than it reads), which is most of the clustering's cost in a
GPU training step. Three ways, equal up to rounding (exactly equal when every frame sits in one cluster):

* ``matmul``: autograd's batched matmul with ``W^T`` (the reference; cuBLAS is far from the memory bandwidth
  at these shapes, K = G).
* ``gather``: each real frame takes its own cluster's gradient times ``1/|cluster|`` (one row gather of the
  G-times smaller scaled gradient), plus, where a cluster is empty (videos shorter than G), an
  ``index_put_`` that adds that cluster's gradient to the frame repeating it.
* ``compiled``: the sum over g written as a reduction for ``torch.compile`` (one kernel that reads the small
  gradient and writes each frame's once); a compiler that fails gives one warning and ``matmul``.
"""
from __future__ import annotations

import warnings
from typing import Callable, Dict

import torch
from torch import Tensor

BACKWARDS = ('matmul', 'gather', 'compiled')
_COMPILED: Dict[str, object] = {}


def spread_matmul(grad: Tensor, weight: Tensor) -> Tensor:
    """``(N, G, D)`` gradient of the means, ``(N, G, T)`` weights -> ``(N, T, D)`` gradient of the frames."""
    return torch.bmm(weight.to(grad.dtype).transpose(1, 2), grad)


def spread_gather(grad: Tensor, weight: Tensor, assign: Tensor, full: bool = False) -> Tensor:
    """``spread_matmul`` as a gather: frame t takes ``W[n, assign[n, t], t] * grad[n, assign[n, t]]``.

    ``full`` says every cluster has a real frame (true of the rules' assignments when every video has at
    least G frames); otherwise the gradients of empty clusters are added to the frames repeating them.
    """
    n, g, t = weight.shape
    d = grad.shape[-1]
    batch = torch.arange(n, device=grad.device)[:, None]
    src = grad.new_empty(n * g + 1, d)  # the scaled cluster gradients and one zero row for padding frames
    torch.mul(grad.reshape(n * g, d), weight.amax(-1).to(grad.dtype).reshape(n * g, 1), out=src[:-1])
    src[-1].zero_()
    real = weight.gather(1, assign[:, None, :]).squeeze(1) > 0  # (N, T): a frame its own cluster averages
    rows = torch.where(real, assign + g * batch, n * g)
    out = src.index_select(0, rows.flatten())
    if not full:  # rows of W that are a repeated frame of an empty cluster (paper: L < G)
        rep = weight.argmax(-1)  # (N, G): the frame a cluster's row points at first
        extra = assign.gather(1, rep) != torch.arange(g, device=grad.device)
        scale = (weight.gather(2, rep[..., None]).squeeze(-1) * extra).to(grad.dtype)
        out.index_put_(((rep + t * batch).flatten(),), (grad * scale[..., None]).reshape(n * g, d),
                       accumulate=True)
    return out.view(n, t, d)


def spread_reduce(grad: Tensor, weight: Tensor) -> Tensor:
    """``spread_matmul`` as a sum over g, for ``torch.compile`` (eager it builds an (N, T, G, D) tensor).

    ``weight`` must already be in ``grad``'s dtype (rounded as the bmm's: inductor drops a cast down and up).
    """
    acc = torch.promote_types(grad.dtype, torch.float32)  # half precision sums in float32, as cuBLAS does
    w = weight.to(acc).transpose(1, 2)[..., None]  # (N, T, G, 1)
    return (w * grad.to(acc)[:, None]).sum(2).to(grad.dtype)


def _compiled() -> Callable[[Tensor, Tensor], Tensor]:
    if 'reduce' not in _COMPILED:
        _COMPILED['reduce'] = torch.compile(spread_reduce)
    return _COMPILED['reduce']


def compiled_failed() -> bool:
    """True once the compiled backward failed in this process (every later one is ``matmul``)."""
    return bool(_COMPILED.get('failed'))


def spread(grad: Tensor, weight: Tensor, assign: Tensor, how: str, full: bool) -> Tensor:
    """The gradient of the frames by the way ``how`` (one of ``BACKWARDS``)."""
    if how == 'gather':
        return spread_gather(grad, weight, assign, full)
    if how == 'compiled' and not _COMPILED.get('failed'):
        try:
            return _compiled()(grad, weight.to(grad.dtype))
        except torch.cuda.OutOfMemoryError:
            raise
        except Exception as err:  # a compiler that is missing or fails: say so once, then use the matmul
            _COMPILED['failed'] = True
            warnings.warn(f"ops/mean_backward.py: torch.compile of the mean's backward failed ({type(err).__name__}: "
                          f"{str(err).splitlines()[0] if str(err) else ''}); using the batched matmul (same values)")
    return spread_matmul(grad, weight)


class ClusterMean(torch.autograd.Function):
    """``bmm(W, x)`` forward (in ``x``'s dtype, autocast off) with the backward chosen by ``how``."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, assign: Tensor, how: str, full: bool) -> Tensor:
        ctx.save_for_backward(weight, assign)
        ctx.how, ctx.full = how, full
        with torch.autocast(x.device.type, enabled=False):
            return torch.bmm(weight.to(x.dtype), x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        weight, assign = ctx.saved_tensors
        return spread(grad.contiguous(), weight, assign, ctx.how, ctx.full), None, None, None, None
