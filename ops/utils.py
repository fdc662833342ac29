"""Meters and metrics (TSM's ops/utils.py)."""
from typing import List, Sequence

import torch


class AverageMeter:
    """Running average of a value weighted by batch size."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.val, self.avg, self.sum, self.count = 0.0, 0.0, 0.0, 0

    def update(self, val: float, n: int = 1) -> None:
        self.val = val
        self.sum += val * n
        self.count += n
        self.avg = self.sum / max(self.count, 1)


def correct_topk(output: torch.Tensor, target: torch.Tensor, topk: Sequence[int] = (1,)) -> List[torch.Tensor]:
    """Number of samples whose target is among the k best scores, for each k: (N, K), (N,) -> [()]."""
    maxk = min(max(topk), output.shape[1])
    pred = output.topk(maxk, dim=1).indices
    hit = pred.eq(target.view(-1, 1))
    return [hit[:, :min(k, maxk)].any(dim=1).sum() for k in topk]

