"""Segmental consensus (TSN): combine the per-segment (or per-cluster) scores of a video."""
import torch
import torch.nn as nn


class ConsensusModule(nn.Module):
    """Consensus over the temporal axis of (N, T, K) scores.

    ``avg`` returns the mean over T, shaped (N, 1, K) as in TSM; ``identity`` returns the input unchanged.
    """

    def __init__(self, consensus_type: str, dim: int = 1) -> None:
        super().__init__()
        if consensus_type not in ('avg', 'identity'):
            raise NotImplementedError(f"consensus_type {consensus_type!r}: expected 'avg' or 'identity'")
        self.consensus_type = consensus_type
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.consensus_type == 'avg':
            return x.mean(dim=self.dim, keepdim=True)
        return x

    def extra_repr(self) -> str:
        return self.consensus_type
