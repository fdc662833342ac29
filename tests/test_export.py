"""The export path of ops/clustering.py and tools/export.py: ONNX / TorchScript / ExportedProgram files that
give the checkpoint's logits, and tools/test_models.py evaluating an ONNX file."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ops.clustering import TemporalClustering, neighbour_hamming, slope_assign

ROOT = Path(__file__).resolve().parent.parent


def tied_activations(n: int, t: int, seed: int) -> torch.Tensor:
    """(N, T, 4, 3, 3) activations with repeated frames and few distinct signs, so distances tie often."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randint(-1, 2, (n, t, 4, 3, 3), generator=g).float()
    repeat = torch.rand(n, t, generator=g) < 0.3
    for i in range(1, t):  # some frames copy the one before: distance 0, ties among zeros
        base[:, i] = torch.where(repeat[:, i, None, None, None], base[:, i - 1], base[:, i])
    return base


@pytest.mark.parametrize('method', ['cumulative', 'slope', 'uniform'])
@pytest.mark.parametrize('G', [1, 3, 8, 20])
def test_exportable_clustering_gives_the_same_distances_and_assignments(method, G):
    for seed in range(6):
        x = tied_activations(5, 14, seed)
        lengths = torch.tensor([14, 9, 2, 1, 5])
        torch.testing.assert_close(neighbour_hamming(x, lengths, packed=False), neighbour_hamming(x, lengths),
                                   rtol=0, atol=0)
        packed, plain = TemporalClustering(method, G), TemporalClustering(method, G, exportable=True)
        flat = x.flatten(0, 1)
        for lens in (lengths, None):
            out_packed, out_plain = packed(flat, 14, lens), plain(flat, 14, lens)
            assert torch.equal(packed.last_assign, plain.last_assign), (method, G, seed)
            assert torch.equal(out_packed, out_plain)


def test_sortless_slope_breaks_ties_as_the_stable_sort():
    # every distance equal: the cuts are the first G-1 pairs; a pattern with a planted tie at the top
    for dist in (torch.full((2, 9), 0.25), torch.tensor([[0.1, 0.5, 0.2, 0.5, 0.5, 0.0, 0.5, 0.1]])):
        for G in (2, 3, 5, 12):
            assert torch.equal(slope_assign(dist, G, sortless=True), slope_assign(dist, G))
    assign = slope_assign(torch.tensor([[0.1, 0.5, 0.2, 0.5, 0.5, 0.0, 0.5, 0.1]]), 3, sortless=True)
    assert assign.tolist() == [[0, 0, 1, 1, 2, 2, 2, 2, 2]]  # cuts after pairs 1 and 3, the earliest maxima
