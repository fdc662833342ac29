"""One training step, the same in main.py and in the tools that measure steps, and the clock that splits an
epoch's wall time into waiting for data and computing (TSM's ``data_time`` and ``batch_time``).

The step: forward under autocast, float32 cross-entropy on the scores, gradients zeroed, backward through the
gradient scaler (``--amp fp16``; a disabled scaler is the identity), optional clipping of the gradient norm
(unscaled first, so the cap applies to the true gradient), optimizer step, scaler update.
"""
import time
from typing import Dict, Iterable, Iterator, Optional, Tuple

import torch
import torch.nn as nn

from ops.utils import AverageMeter

# --amp choice -> autocast dtype ('none': no autocast)
AMP_DTYPES = {'none': None, 'fp16': torch.float16, 'bf16': torch.bfloat16}


def autocast(amp: str, device: torch.device) -> torch.autocast:
    """Autocast context on ``device`` for an ``--amp`` choice (``none``: a disabled context)."""
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp {amp!r}: expected one of {', '.join(AMP_DTYPES)}")
    dtype = AMP_DTYPES[amp]
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def grad_scaler(amp: str, device: torch.device) -> torch.amp.GradScaler:
    """The loss scaler of an ``--amp`` choice: active for fp16 only (bf16 has float32's exponent range)."""
    return torch.amp.GradScaler(device.type, enabled=amp == 'fp16')


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
               frames: torch.Tensor, labels: torch.Tensor, lengths: Optional[torch.Tensor] = None,
               amp: str = 'none', clip: float = 0.0, keep_grads: bool = False
               ) -> Tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step on a batch; returns the scores (N, num_class) and the mean loss (), detached.

    ``frames`` (N, T*C, H, W) and ``lengths`` (N,) or None go to ``model(frames, lengths)``; ``labels`` (N,).
    ``clip`` > 0 caps the global L2 norm of the gradients (TSM's ``--clip-gradient``). ``keep_grads`` zeroes
    the gradients in place instead of freeing them (memory measurements keep them allocated).
    """
    with autocast(amp, frames.device):
        output = model(frames, lengths)
        loss = nn.functional.cross_entropy(output.float(), labels)
    optimizer.zero_grad(set_to_none=not keep_grads)
    scaler.scale(loss).backward()
    if clip:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), clip)
    scaler.step(optimizer)
    scaler.update()
    return output.detach(), loss.detach()


class StepTimer:
    """Splits a training loop's wall time into data time (waiting for the loader) and compute time (the rest).

    ``batches(loader)`` yields the loader's batches and times each wait, the loader's start included
    (``data``: val = the last wait, avg over batches). ``step_done()`` closes a step (``batch``: the time since the
    previous step closed, its wait included, as TSM's ``batch_time``). Call it after something that waits for
    the device (``loss.item()``): on CUDA the step's kernels are then finished, so they are not counted as the
    next batch's wait. ``totals()`` gives the seconds of each since the timer was made; they sum to its wall time.
    """

    def __init__(self) -> None:
        self.data, self.batch = AverageMeter(), AverageMeter()
        self.start = self._end = time.perf_counter()

    def batches(self, loader: Iterable) -> Iterator:
        """``loader``'s items, each wait for one added to ``data``."""
        t0 = time.perf_counter()
        iterator = iter(loader)  # a DataLoader starts its workers here
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            self.data.update(time.perf_counter() - t0)
            yield batch
            t0 = time.perf_counter()

    def step_done(self) -> None:
        """Close a step: ``batch`` gets the seconds since the previous step closed (or the timer was made)."""
        now = time.perf_counter()
        self.batch.update(now - self._end)
        self._end = now

    def totals(self) -> Dict[str, float]:
        """``data_s``: seconds spent waiting for batches; ``compute_s``: the rest of the wall time so far."""
        wall = time.perf_counter() - self.start
        return {'data_s': self.data.sum, 'compute_s': wall - self.data.sum}
