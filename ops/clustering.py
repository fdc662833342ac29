"""Temporal clustering and aggregation of frame activations (paper Sec. 3.3, Figs. 2-3).

The T frames of a video are grouped into G contiguous clusters using the Hamming distance
between the signs of neighbouring frames' activations; each cluster is replaced by the mean of
its frames, so the layers after it run on G frames instead of T (docs/DESIGN.md §3). The distances are
computed in ops/hamming.py and compiled (``--fused_assign``) by ops/compiled.py. A rule (frames -> clusters) is
a function registered by name with ``@register_rule``: ``--cluster`` offers 'none' and ``rule_names()``, and the
model, the chunked path and the benchmarks look it up with ``get_rule``.

Conventions shared by every function here:
  * ``x`` is ``(N, T, ...)``: N videos, T frames (after padding), any per-frame shape;
    D = prod(...). Everything is batched over videos on ``x``'s device, without a host sync.
  * ``lengths`` is an int64 tensor ``(N,)`` on the same device with ``1 <= lengths <= T``
    (not checked: checking would sync), or None for "every video has T frames". Frames
    ``i >= L`` are padding: they enter no distance and no mean, get no gradient, and are
    assigned cluster G-1 so that every row of an assignment stays non-decreasing.
  * An assignment is ``(N, T)`` int64, the cluster id of each frame. For L >= G it is
    non-decreasing, 0 at frame 0, G-1 at frame L-1, and no cluster is empty.
  * L < G (a video shorter than the number of clusters): frames are repeated evenly, cluster g
    takes frame ``floor(g * L / G)``. The assignment records one cluster each frame fills:
    frame i gets ``ceil(i * G / L)`` (the first cluster repeating it), except that the last
    frame gets G-1 (when L >= 2), so the row still starts at 0 and ends at G-1. The clusters
    between are left empty in the assignment and ``aggregate`` fills every empty cluster g
    with frame ``floor(g * L / G)``, which are exactly the repeats.
  * Empty clusters of the cumulative rule (a jump larger than one share of the total): with
    ``b_g`` the first frame of cluster g (g = 1..G-1), boundaries are fixed in temporal order,
    each moved the least that keeps every cluster before it non-empty and leaves one frame for
    each cluster after it: ``b_g <- min(max(b_g, b_{g-1} + 1), L - G + g)``. So the frames just
    after a large jump become the clusters the jump skipped; boundaries only move left when
    the jump is so close to the end of the video that the later clusters would not fit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ops.compiled import fused_by_default, run_compiled
from ops.hamming import lengths_or_full, neighbour_hamming


@dataclass(frozen=True)
class ClusteringRule:
    """A registered rule: ``assign(dist (N, T-1) float32, G, lengths (N,) or None) -> (N, T) int64`` assignment
    with the properties of the module docstring. A rule without ``needs_distances`` gets an all-zero ``dist``
    placeholder (``no_distances``: nothing computed) and reads only its shape and device. ``export_kwargs``: the
    keywords that make ``assign`` use only ops ONNX has, for ``TemporalClustering(exportable=True)``."""
    name: str
    assign: Callable[..., Tensor]
    needs_distances: bool = True
    export_kwargs: Dict[str, object] = field(default_factory=dict)


_RULES: Dict[str, ClusteringRule] = {}  # in registration order: main.py's --cluster choices after 'none'


def register_rule(name: str, needs_distances: bool = True, export_kwargs: Dict[str, object] | None = None
                  ) -> Callable[[Callable[..., Tensor]], Callable[..., Tensor]]:
    """Decorator registering ``fn(dist, G, lengths)`` as the clustering rule ``name`` (``--cluster name``); the
    fields are ``ClusteringRule``'s. Register before the flags are parsed (at import) to be a ``--cluster`` choice."""
    def register(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
        if name in _RULES or name == 'none':
            raise ValueError(f"ops/clustering.py: clustering rule {name!r} is taken ({rule_names()} and 'none')")
        _RULES[name] = ClusteringRule(name, fn, needs_distances, dict(export_kwargs or {}))
        return fn
    return register


def rule_names() -> Tuple[str, ...]:
    """The registered rules' names, in registration order."""
    return tuple(_RULES)


def get_rule(name: str) -> ClusteringRule:
    """The rule registered as ``name``; an unknown name raises ValueError listing the known ones."""
    if name not in _RULES:
        raise ValueError(f"ops/clustering.py: unknown clustering method {name!r}, expected one of the registered "
                         f"rules {rule_names()} (register_rule)")
    return _RULES[name]


def no_distances(n: int, t: int, device: torch.device | str | None = None) -> Tensor:
    """The ``dist`` a rule without ``needs_distances`` receives: ``(N, T-1)`` zeros, one stored value expanded."""
    return torch.zeros((), device=device).expand(n, t - 1)


def _short_and_padding(assign: Tensor, length: Tensor, num_clusters: int) -> Tensor:
    """Overrides the rows with L < G by the even repetition, and the padding frames by G-1."""
    g, t = num_clusters, assign.shape[1]
    i = torch.arange(t, device=assign.device)
    last = length[:, None]
    first_fill = (i * g + last - 1) // last  # ceil(i * G / L): first cluster that repeats frame i
    short = torch.where((i == last - 1) & (last > 1), g - 1, first_fill)
    assign = torch.where(last < g, short, assign)
    return torch.where(i >= last, g - 1, assign)


def _assign_from_boundaries(first: Tensor, length: Tensor, t: int, num_clusters: int) -> Tensor:
    """``(N, G-1)`` first frame of clusters 1..G-1 (non-decreasing) -> ``(N, T)`` assignment.

    Moves the boundaries the least needed so that no cluster is empty (module docstring):
    a running maximum over ``b_g - g`` (with ``b_0 = 0``) pushes each boundary just past the one before,
    then ``b_g <= L - G + g`` leaves one frame for each later cluster. The running maximum is a masked max
    over ``(N, G, G)`` rather than ``cummax``, which has no ONNX operator (``tools/export.py``); same integers.
    """
    g = torch.arange(1, num_clusters, device=first.device)
    slack = torch.cat([first.new_zeros(first.shape[0], 1), first - g], 1)  # (N, G), every entry >= -G
    upto = g.new_ones(num_clusters, num_clusters).tril().bool()  # [i, j]: j <= i
    first = torch.where(upto, slack[:, None, :], -num_clusters).amax(-1)[:, 1:] + g
    first = torch.minimum(first, (length - num_clusters)[:, None] + g)
    i = torch.arange(t, device=first.device)
    assign = (i[None, :, None] >= first[:, None, :]).sum(-1)
    return _short_and_padding(assign, length, num_clusters)


def uniform_assign(N: int, T: int, G: int, lengths: Tensor | None = None,
                   device: torch.device | str | None = None) -> Tensor:
    """Uniform grouping into equal chunks (paper Sec. 4, "Ours-uniform").

    Frame i of a video of length L goes to ``floor(i * G / L)``.

    Args:
        N, T, G: videos, frames per video (after padding), clusters.
        lengths: ``(N,)`` int64 real frames per video, or None.
        device: where to build the assignment when ``lengths`` is None.

    Returns:
        ``(N, T)`` int64 assignment.
    """
    device = lengths.device if lengths is not None else device
    length = lengths_or_full(lengths, N, T, device)
    i = torch.arange(T, device=device)
    return _short_and_padding(i * G // length[:, None], length, G)


@register_rule('uniform', needs_distances=False)
def uniform_rule(dist: Tensor, G: int, lengths: Tensor | None = None) -> Tensor:
    """Uniform grouping (paper Sec. 4, "Ours-uniform") as a rule: ``uniform_assign`` on ``dist``'s shape.

    ``dist`` is only read for N, T-1 and the device (``no_distances``: no distance is computed).
    """
    return uniform_assign(dist.shape[0], dist.shape[1] + 1, G, lengths, device=dist.device)


@register_rule('slope', export_kwargs={'sortless': True})
def slope_assign(dist: Tensor, G: int, lengths: Tensor | None = None, sortless: bool = False) -> Tensor:
    """Slope clustering (paper Sec. 3.3, Fig. 3 green lines).

    Cut after the G-1 largest ``d_k`` (``k < L-1``; ties: the earlier k); clusters are the
    runs between cuts.

    Args:
        dist: ``(N, T-1)`` neighbour distances (``neighbour_hamming``).
        G: number of clusters.
        lengths: ``(N,)`` int64 real frames per video, or None.
        sortless: find the cuts by pairwise comparisons (``_top_in_order``), not by a stable sort, which
            ONNX lacks (``tools/export.py``): the same cuts, with ``(N, T, T)`` booleans of memory.

    Returns:
        ``(N, T)`` int64 assignment.
    """
    n, t = dist.shape[0], dist.shape[1] + 1
    length = lengths_or_full(lengths, n, t, dist.device)
    k = torch.arange(t - 1, device=dist.device)
    key = torch.where(k < (length - 1)[:, None], dist, float('-inf'))
    key = F.pad(key, (0, max(0, G - t)), value=float('-inf'))  # T < G: every row is short anyway
    if sortless:
        return _assign_from_boundaries(_top_in_order(key, G - 1) + 1, length, t, G)
    # A stable descending sort keeps equal distances in temporal order: ties go to the earlier k.
    cuts = key.sort(dim=1, descending=True, stable=True).indices[:, :G - 1]
    return _assign_from_boundaries(cuts.sort(dim=1).values + 1, length, t, G)


def _top_in_order(key: Tensor, m: int) -> Tensor:
    """``(N, K)`` keys -> ``(N, m)`` ascending indices of the m largest (ties: the earlier index), without a sort.

    Index k is taken when fewer than m keys rank before it: larger, or equal and earlier (a stable descending
    sort's order); the taken indices are then listed in order through their running count.
    """
    j = torch.arange(key.shape[1], device=key.device)
    before = (key[:, :, None] > key[:, None, :]) | ((key[:, :, None] == key[:, None, :]) & (j[:, None] < j)[None])
    taken = before.sum(1) < m  # (N, K); before[n, j, k]: key j ranks before key k
    slot = taken.long().cumsum(1) - 1  # the taken index's place among the taken ones
    pick = taken[:, :, None] & (slot[:, :, None] == torch.arange(m, device=key.device))  # (N, K, m)
    return (pick.long() * j[None, :, None]).sum(1)


@register_rule('cumulative')
def cumulative_assign(dist: Tensor, G: int, lengths: Tensor | None = None) -> Tensor:
    """Cumulative clustering (paper Sec. 3.3, Eq. 8, Fig. 3 dashed lines).

    ``C_0 = 0``, ``C_i = d_0 + ... + d_{i-1}``; frame i goes to
    ``min(G-1, floor(G * C_i / C_{L-1}))``, i.e. the total distance is cut into G equal shares.
    Empty clusters are fixed as in the module docstring; ``C_{L-1} = 0`` gives uniform.
    Sums are in float64 and the floor is taken as the exact comparison ``G*C_i >= g*C_{L-1}``,
    so a frame exactly on a share boundary starts the next cluster.

    Args:
        dist: ``(N, T-1)`` neighbour distances (``neighbour_hamming``).
        G: number of clusters.
        lengths: ``(N,)`` int64 real frames per video, or None.

    Returns:
        ``(N, T)`` int64 assignment.
    """
    n, t = dist.shape[0], dist.shape[1] + 1
    length = lengths_or_full(lengths, n, t, dist.device)
    cum = F.pad(dist.double().cumsum(1), (1, 0))  # (N, T): C_i; padding d_k only reach i >= L
    total = cum.gather(1, (length - 1)[:, None])  # (N, 1): C_{L-1}
    g = torch.arange(1, G, device=dist.device)
    real = torch.arange(t, device=dist.device) < length[:, None]
    # frame i lies in a cluster < g, the floor of Eq. 8 as an exact comparison
    before = (G * cum[:, :, None] < g * total[:, :, None]) & real[:, :, None]
    assign = _assign_from_boundaries(before.sum(1), length, t, G)
    return torch.where(total > 0, assign, uniform_assign(n, t, G, length))


def assign_rule(dist: Tensor, G: int, method: str, lengths: Tensor | None = None, fused: bool = False,
                exportable: bool = False) -> Tensor:
    """The rule registered as ``method`` (``get_rule``); with ``fused`` as one ``torch.compile``d graph.

    Compiled, the rule's ~40 small kernels become a few, with the same assignment as eager
    (``tests/test_clustering.py``, on the CPU and on CUDA): it has no floating-point division, and its float64
    sums of float32 distances are exact in any order while T * 2**(23 + ceil(log2 D)) <= 2**53 (every
    distance is a multiple of 2**-(23 + ceil(log2 D)) below 1), e.g. up to 1024 frames for ResNet-50's
    ``layer1`` at 224 px (D = 802816). Beyond that bound compiled and eager may round a sum differently.
    ``exportable``: eager, with the rule's ``export_kwargs`` (slope cuts without a sort); it overrides ``fused``.
    """
    rule = get_rule(method)
    if exportable:
        return rule.assign(dist, G, lengths, **rule.export_kwargs)
    if fused and rule.needs_distances:  # a rule without distances: a few integer ops, nothing to fuse
        assign = run_compiled(f'{method}_assign', rule.assign, f'the {method} rule', dist, G, lengths)
        if assign is not None:
            return assign
    return rule.assign(dist, G, lengths)


def aggregate(x: Tensor, assign: Tensor, G: int, lengths: Tensor | None = None, fused: bool = False) -> Tensor:
    """Mean of the raw activations of each cluster's frames (paper Sec. 3.3, Eq. 4).

    Padding frames get weight 0 (so no gradient; they must be finite, as 0 * inf = nan). A
    cluster with no frame, which only happens for L < G, takes frame ``floor(g * L / G)``.
    Computed as one batched matmul with the ``(N, G, T)`` averaging weights (``fused``: the weights
    from one compiled graph, the same values).

    Args:
        x: ``(N, T, ...)`` activations.
        assign: ``(N, T)`` int64 cluster ids in [0, G).
        G: number of clusters.
        lengths: ``(N,)`` int64 real frames per video, or None.
        fused: compile the weights (``cluster_weights``).

    Returns:
        ``(N, G, ...)`` cluster means, in ``x``'s dtype, differentiable w.r.t. ``x``.
    """
    n, t = x.shape[:2]
    weight = None
    if fused:
        weight = run_compiled('cluster_weights', cluster_weights, 'the mean weights', assign, G, lengths)
    if weight is None:
        weight = cluster_weights(assign, G, lengths)
    out = torch.bmm(weight.to(x.dtype), x.reshape(n, t, -1))
    return out.reshape(n, G, *x.shape[2:])


def cluster_weights(assign: Tensor, G: int, lengths: Tensor | None = None) -> Tensor:
    """The averaging weights of ``aggregate``: ``(N, T)`` assignment -> ``(N, G, T)`` float32.

    Row g holds 1/|cluster g| on the cluster's real frames (0 on padding); an empty cluster
    (only for L < G) holds 1 on frame ``floor(g * L / G)``. The division is in float64, then rounded to
    float32: with 53 >= 2 * 24 + 2 bits this double rounding gives the correctly rounded float32 quotient,
    so the compiled weights equal the eager ones whether or not the compiler's float32 division is exact
    (Triton's ``/`` need not be: triton-lang/triton#10661).
    """
    n, t = assign.shape
    length = lengths_or_full(lengths, n, t, assign.device)
    i = torch.arange(t, device=assign.device)
    g = torch.arange(G, device=assign.device)
    member = (assign[:, None, :] == g[None, :, None]) & (i < length[:, None])[:, None, :]
    count = member.sum(-1, keepdim=True)
    repeat = i[None, None, :] == (g[None, :] * length[:, None] // G)[:, :, None]
    mean = (member.double() / count.clamp(min=1).double()).float()
    return torch.where(count > 0, mean, repeat.float())


class TemporalClustering(nn.Module):
    """Clusters N*T frames into N*G (paper Fig. 2): ``(N*T, C, H, W) -> (N*G, C, H, W)``.

    ``method`` names a registered rule (``rule_names()``). The assignment is computed without gradient; the
    mean carries gradient to every real frame. ``fused`` computes the distances with one compiled pass
    (``neighbour_hamming``); None decides per call (``fused_by_default``: on CUDA when Triton is installed);
    fused, the rule (``assign_rule``) and the mean's weights are compiled too, unless ``fuse_rule`` is False
    (the distances only: an ablation, ``tools/benchmark*.py`` measure what compiling the rest gains).
    ``exportable=True`` counts the sign differences as booleans instead of bit-packed codes and runs the rule
    with its ``export_kwargs`` (the same assignments with only ops ONNX has, for ``tools/export.py``; it
    overrides ``fused``). ``last_assign`` keeps the latest ``(N, T)`` assignment (detached) for analysis.
    """

    def __init__(self, method: str, num_clusters: int, fused: bool | None = None, exportable: bool = False,
                 fuse_rule: bool = True):
        super().__init__()
        get_rule(method)  # an unknown name raises here, listing the registered ones
        if num_clusters < 1:
            raise ValueError(f"ops/clustering.py: num_clusters must be >= 1, got {num_clusters}")
        self.method = method
        self.num_clusters = num_clusters
        self.fused = fused
        self.exportable = exportable
        self.fuse_rule = fuse_rule
        self.last_assign: Tensor | None = None

    def _split(self, x: Tensor, num_frames: int) -> Tensor:
        if x.shape[0] % num_frames:
            raise ValueError(f"ops/clustering.py: batch of {x.shape[0]} frames is not a "
                             f"multiple of num_frames={num_frames}")
        return x.reshape(x.shape[0] // num_frames, num_frames, *x.shape[1:])

    def _fused(self, x: Tensor) -> bool:
        if self.exportable:  # plain eager ops only
            return False
        return fused_by_default(x) if self.fused is None else self.fused

    def assign(self, x: Tensor, num_frames: int, lengths: Tensor | None = None) -> Tensor:
        """``(N*T, C, H, W)`` activations -> ``(N, T)`` int64 cluster ids, without gradient."""
        with torch.no_grad():
            video = self._split(x.detach(), num_frames)
            n, t, fused = video.shape[0], video.shape[1], self._fused(video)
            dist = (neighbour_hamming(video, lengths, fused=fused, packed=not self.exportable)
                    if get_rule(self.method).needs_distances else no_distances(n, t, x.device))
            assign = assign_rule(dist, self.num_clusters, self.method, lengths, fused=fused and self.fuse_rule,
                                 exportable=self.exportable)
        self.last_assign = assign.detach()
        return assign

    def forward(self, x: Tensor, num_frames: int, lengths: Tensor | None = None) -> Tensor:
        """``(N*T, C, H, W)`` -> ``(N*G, C, H, W)``: each cluster replaced by its mean."""
        assign = self.assign(x, num_frames, lengths)
        out = aggregate(self._split(x, num_frames), assign, self.num_clusters, lengths,
                        fused=self._fused(x) and self.fuse_rule)
        return out.reshape(-1, *x.shape[1:])

    def extra_repr(self) -> str:
        return (f"method={self.method!r}, num_clusters={self.num_clusters}, fused={self.fused}"
                + ("" if self.fuse_rule else ", fuse_rule=False") + (", exportable=True" if self.exportable else ""))
