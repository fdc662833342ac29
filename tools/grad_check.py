"""Do similar frames have similar gradients, and how well does a cluster's single gradient approximate the
sum of its frames' gradients? (paper Sec. 4.2, Fig. 5 and Fig. 6)

    python tools/grad_check.py move4mnist RGB --root_path D --weights CKPT [--num_segments 16] \\
        [--block 3] --num_videos 8 --out DIR
    python tools/grad_check.py move4mnist RGB --root_path D --arch resnet18 --shift --pretrain scratch \\
        --img_size 64 --out DIR                                   # a fresh model from main.py's flags

The network runs in eval mode (BatchNorm on running statistics, no dropout), so a frame's computation
depends on the other frames only through the temporal shift, and both networks below are deterministic.
The stem and the layers up to the clustering point (``--cluster_after``, paper: stage 1, ResNet's layer1) run once on all
F frames (shift over F); their output x_i (i = 1..F) feeds two networks, each with its own loss
L = cross-entropy of its own consensus scores (summed over videos, so a video's gradients are its own):

  * all frames (TSM on every frame from the clustering point on): the late layers on the F activations,
    shift over F, consensus = mean of the F frames' scores. Its loss is L_F.
  * clustered (the model as it trains): x_i of each cluster c averaged to xbar_c (``ops.clustering``), the
    late layers on the G means, shift over G, consensus = mean of the G clusters' scores. Its loss is L_G.

Fig. 6 (``--block B``, paper: "gradients from the 3rd block" = layer3). The activation a at block B is the
output of layer B (the input of the next layer); for B = cluster_after it is x_i in the all-frame network and
xbar_c in the clustered one. Per cluster c, Eq. 1 of the paper is compared as
    true_c  = sum_{i in c} dL_F / da_i      (the left side: every frame's gradient, summed over the cluster)
    clust_c = dL_G / da_c                   (the right side: the single gradient of the cluster; for
                                             B = cluster_after it also equals sum_{i in c} dL_G / dx_i,
                                             since xbar_c is a mean)
and reported: ||true_c - clust_c|| (Euclidean), that over ||true_c|| (relative) and cos(true_c, clust_c).
Note the weighting: with mean aggregation and mean consensus a frame of a cluster of size n_c weighs
1/(G n_c) in L_G but 1/F in L_F, so even for a linear network clust_c = true_c * F / (G n_c). Uniform
grouping (n_c = F/G) has no such error; variable-size clusters have. ``size_matched`` also reports the
relative distance after rescaling clust_c by G n_c / F, which isolates the non-linearity that Eq. 1 is about
(with G = F every distance is 0: both networks are the same function).

Fig. 5: at layer1 (paper: "the 1st block of ResNet-18"), for all F(F-1)/2 frame pairs of each video, the
Euclidean and the Hamming (fraction of differing sign bits) distance of the activations against the
Euclidean distance of the all-frame gradients dL_F/dx; Pearson correlations per video and pooled.

Writes ``fig5_activation_vs_gradient.png``, ``fig6_gradient_distance.png`` and ``grad_check.json`` in --out.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

import builder
from archs.base import stage_number
from ops.clustering import aggregate, rule_names
from ops.models import TSN
from ops.runtime import select_device
from tools.visualize_clusters import (assign_all, build_analysis_parser, complete_args,
                                      load_models, load_videos)

PAPER_CLUSTERS = 16  # Fig. 6 uses 16 clusters


@contextmanager
def capture_outputs(model: TSN, stages: Sequence[int]) -> Iterator[Dict[int, torch.Tensor]]:
    """Collect the outputs of the given stages (1-based: the output of a stage's last module) during the forward
    passes inside."""
    store: Dict[int, torch.Tensor] = {}
    handles = [model.base_model.get_submodule(model.layout.stages[k - 1][-1]).register_forward_hook(
        lambda _m, _i, out, k=k: store.__setitem__(k, out)) for k in stages]
    try:
        yield store
    finally:
        for h in handles:
            h.remove()


def video_loss(model: TSN, scores: torch.Tensor, t: int, labels: torch.Tensor) -> torch.Tensor:
    """The model's own loss: consensus of ``(N*t, K)`` scores over t, cross-entropy summed over videos."""
    logits = model.consensus(scores.view(-1, t, scores.shape[-1])).squeeze(1)
    return F.cross_entropy(logits.float(), labels, reduction='sum')


def all_frame_pass(model: TSN, frames: torch.Tensor, labels: torch.Tensor, num_frames: int,
                   names: Sequence[int]) -> Tuple[torch.Tensor, Dict[int, torch.Tensor], Dict[int, torch.Tensor]]:
    """TSM on every frame: ``(N, F*C, H, W)`` -> clustering-point activations ``(N*F, ...)`` (detached) and,
    per stage of ``names``, its per-frame output and dL_F/d(output), both ``(N, F, D)``."""
    x = frames.view((-1, model.sample_len) + frames.shape[-2:]).detach().requires_grad_(True)
    with capture_outputs(model, names) as acts:
        x_c = model.run_early(x, num_frames)
        loss = video_loss(model, model.run_late(x_c, num_frames), num_frames, labels)
    outs = [acts[n] for n in names]
    grads = torch.autograd.grad(loss, outs)
    n = frames.shape[0]
    return (x_c.detach(), {k: a.detach().reshape(n, num_frames, -1) for k, a in zip(names, outs)},
            {k: g.reshape(n, num_frames, -1) for k, g in zip(names, grads)})


def clustered_pass(model: TSN, x_c: torch.Tensor, assign: torch.Tensor, labels: torch.Tensor,
                   num_clusters: int, block: int) -> torch.Tensor:
    """The clustered network: means of each cluster, late layers over G -> dL_G/da at ``block``, ``(N, G, D)``."""
    n, g = assign.shape[0], num_clusters
    xbar = aggregate(x_c.view(n, -1, *x_c.shape[1:]), assign, g).reshape(n * g, *x_c.shape[1:])
    xbar.requires_grad_(True)
    later = [] if block == model.cluster_after else [block]
    with capture_outputs(model, later) as acts:
        loss = video_loss(model, model.run_late(xbar, g), g, labels)
    target = xbar if not later else acts[block]
    return torch.autograd.grad(loss, target)[0].reshape(n, g, -1)


def compare_clusters(true: torch.Tensor, clust: torch.Tensor, assign: torch.Tensor,
                     num_clusters: int) -> Dict[str, np.ndarray]:
    """Per cluster (flattened over videos): Eq. 1's sides compared, see the module docstring.

    Args:
        true: ``(N, F, D)`` dL_F/da_i per frame. clust: ``(N, G, D)`` dL_G/da_c per cluster.
        assign: ``(N, F)`` cluster ids.
    """
    n, f = assign.shape
    member = (assign[:, None, :] == torch.arange(num_clusters, device=assign.device)[None, :, None])
    true_sum = torch.bmm(member.to(true.dtype), true)  # (N, G, D): sum over each cluster's frames
    size = member.sum(-1, keepdim=True).to(true.dtype)
    scaled = clust * size * num_clusters / f
    norm = true_sum.norm(dim=-1).clamp_min(1e-30)
    dist = (true_sum - clust).norm(dim=-1)
    out = {'distance': dist, 'relative': dist / norm, 'size_matched': (true_sum - scaled).norm(dim=-1) / norm,
           'cosine': F.cosine_similarity(true_sum, clust, dim=-1, eps=1e-30), 'true_norm': norm,
           'size': size.squeeze(-1)}
    return {k: v.detach().double().cpu().numpy().reshape(-1) for k, v in out.items()}


def pair_distances(acts: torch.Tensor, grads: torch.Tensor) -> Dict[str, np.ndarray]:
    """All F(F-1)/2 frame pairs of one video (Fig. 5): ``(F, D)`` activations and gradients -> Euclidean and
    Hamming (fraction of differing signs) activation distances and the Euclidean gradient distance."""
    f = acts.shape[0]
    i, j = torch.triu_indices(f, f, offset=1)
    bits = (acts > 0).float()
    hamming = (bits @ (1 - bits).T + (1 - bits) @ bits.T) / acts.shape[1]
    a, g = acts.double(), grads.double()
    return {'act_euclidean': torch.cdist(a, a)[i, j].numpy(), 'act_hamming': hamming[i, j].double().numpy(),
            'grad_euclidean': torch.cdist(g, g)[i, j].numpy(), 'i': i.numpy(), 'j': j.numpy()}


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; nan when either side is constant."""
    if np.std(a) == 0 or np.std(b) == 0:
        return float('nan')
    return float(np.corrcoef(a, b)[0, 1])


def _summary(per: Dict[str, np.ndarray]) -> Dict[str, float]:
    return {'distance_mean': float(per['distance'].mean()), 'distance_median': float(np.median(per['distance'])),
            'relative_mean': float(per['relative'].mean()), 'relative_median': float(np.median(per['relative'])),
            'size_matched_mean': float(per['size_matched'].mean()),
            'size_matched_median': float(np.median(per['size_matched'])),
            'cosine_mean': float(per['cosine'].mean()), 'true_norm_mean': float(per['true_norm'].mean())}


def plot_fig5(path: str, pairs: List[Dict[str, np.ndarray]], names: List[str],
              relevance: Optional[List[np.ndarray]], max_videos: int = 3) -> None:
    """Fig. 5: activation distance (Euclidean, Hamming) vs gradient distance, one row per video."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = min(max_videos, len(pairs))
    fig, axes = plt.subplots(rows, 2, figsize=(9, 3.1 * rows), squeeze=False)
    kinds = [('both informative', 'C2'), ('both distracting', 'C3'), ('one of each', 'C0')]
    for r in range(rows):
        p = pairs[r]
        if relevance is not None:
            ri, rj = relevance[r][p['i']], relevance[r][p['j']]
            kind = np.where((ri == 1) & (rj == 1), 0, np.where((ri == 0) & (rj == 0), 1, 2))
        else:
            kind = np.full(len(p['i']), 2)
        for c, key in enumerate(('act_euclidean', 'act_hamming')):
            ax = axes[r][c]
            for k, (label, color) in enumerate(kinds):
                sel = kind == k
                if sel.any():
                    ax.scatter(p[key][sel], p['grad_euclidean'][sel], s=5, alpha=0.6, color=color,
                               label=label if relevance is not None else None)
            ax.set_xlabel(f"activation distance ({'Euclidean' if c == 0 else 'Hamming, fraction of signs'})",
                          fontsize=8)
            ax.set_ylabel('gradient distance (Euclidean)', fontsize=8)
            ax.set_title(f"{names[r]}: Pearson r = {pearson(p[key], p['grad_euclidean']):.2f}", fontsize=8)
            ax.tick_params(labelsize=7)
            if relevance is not None and r == 0 and c == 0:
                ax.legend(fontsize=7, markerscale=2)
    fig.suptitle('Fig. 5: frame pairs, stage-1 activations vs their gradients (all-frame loss)', fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_fig6(path: str, per: Dict[str, Dict[str, np.ndarray]], block: int, clusters: int) -> None:
    """Fig. 6: per-cluster distance between true and clustered gradients, a box per method."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    panels = [('distance', '||sum_i dL_F/da_i - dL_G/da_c||'), ('relative', 'relative to ||sum_i dL_F/da_i||'),
              ('size_matched', 'relative, dL_G/da_c rescaled by G n_c / F')]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    methods = list(per)
    for ax, (key, label) in zip(axes, panels):
        data = [per[m][key] for m in methods]
        ax.boxplot(data, showmeans=True, showfliers=True, flierprops={'markersize': 2})
        ax.set_xticks(range(1, len(methods) + 1))
        ax.set_xticklabels(methods)
        ax.set_title(label, fontsize=9)
        ax.tick_params(labelsize=8)
    axes[0].set_ylabel(f'per cluster, gradient at stage {block} output', fontsize=8)
    fig.suptitle(f'Fig. 6: gradient approximation per cluster (G = {clusters}; boxes: median/quartiles, '
                 f'triangles: mean)', fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Optional[List[str]] = None) -> Dict[str, object]:
    """Run both checks, print the tables, write the figures and ``grad_check.json``; return the numbers."""
    parser = build_analysis_parser("true vs clustered gradients (paper Sec. 4.2, Fig. 5 and 6)")
    parser.add_argument('--block', default=3, type=stage_number, metavar='STAGE',
                        help="compare gradients at this stage's output (paper Fig. 6: 3, ResNet's layer3)")
    args = complete_args(parser.parse_args(argv), default_clusters=PAPER_CLUSTERS)
    if len(args.weights) > 1:
        parser.error("grad_check takes one --weights checkpoint")
    if args.block < args.cluster_after:
        parser.error(f"--block {args.block} lies before the clustering point ({args.cluster_after}): "
                     f"there is no per-cluster activation there")
    if args.consensus_type != 'avg':
        parser.error("the video loss needs --consensus_type avg")
    device = select_device(args.device)
    num_class = builder.dataset_config(args).num_class
    label, model = load_models(args, num_class, device)[0]
    for p in model.parameters():
        p.requires_grad_(False)  # only activation gradients are needed
    videos, _ = load_videos(args, model)
    f, g = args.frames, args.num_segments
    short = [(p, n) for p, n in zip(videos.paths, videos.lengths.tolist()) if n < f]
    if short:
        raise SystemExit(f"grad_check needs videos of at least F={f} frames; {short[0][0]} has {short[0][1]}")
    methods = rule_names()
    per: Dict[str, List[Dict[str, np.ndarray]]] = {m: [] for m in methods}
    pairs: List[Dict[str, np.ndarray]] = []
    names = sorted({1, args.cluster_after, args.block})
    for v in range(len(videos.paths)):  # one video at a time: memory stays that of one video
        frames, labels = videos.frames[v:v + 1].to(device), videos.labels[v:v + 1].to(device)
        x_c, acts, grads = all_frame_pass(model, frames, labels, f, names)
        pairs.append(pair_distances(acts[1][0].cpu(), grads[1][0].cpu()))
        for method, assign in assign_all(x_c, f, g).items():
            clust = clustered_pass(model, x_c, assign, labels, g, args.block)
            per[method].append(compare_clusters(grads[args.block], clust, assign, g))
    merged = {m: {k: np.concatenate([d[k] for d in per[m]]) for k in per[m][0]} for m in methods}
    fig6 = {m: _summary(merged[m]) for m in methods}
    print(f"Fig. 6: {len(videos.paths)} videos, {label} model, F={f} frames -> G={g} clusters after "
          f"stage {args.cluster_after}, gradients at the stage {args.block} output (per cluster, over clusters and videos)")
    head = ('method', 'dist mean', 'dist median', 'rel mean', 'rel median', 'size-matched', 'cosine')
    print(f"{head[0]:<11}" + ''.join(f"{h:>13}" for h in head[1:]))
    for m, s in fig6.items():
        print(f"{m:<11}{s['distance_mean']:>13.4g}{s['distance_median']:>13.4g}{s['relative_mean']:>13.3f}"
              f"{s['relative_median']:>13.3f}{s['size_matched_mean']:>13.3f}{s['cosine_mean']:>13.3f}")
    order = sorted(methods, key=lambda m: fig6[m]['distance_mean'])
    order_sm = sorted(methods, key=lambda m: fig6[m]['size_matched_mean'])
    print(f"ordering by mean distance: {' < '.join(order)}; by mean size-matched relative distance: "
          f"{' < '.join(order_sm)} (paper Fig. 6: cumulative < slope < uniform)")
    r_euc = [pearson(p['act_euclidean'], p['grad_euclidean']) for p in pairs]
    r_ham = [pearson(p['act_hamming'], p['grad_euclidean']) for p in pairs]
    pooled = {k: np.concatenate([p[k] for p in pairs]) for k in ('act_euclidean', 'act_hamming', 'grad_euclidean')}
    fig5 = {'per_video': [{'video': n, 'pearson_euclidean': a, 'pearson_hamming': b}
                          for n, a, b in zip(videos.paths, r_euc, r_ham)],
            'pooled_pearson_euclidean': pearson(pooled['act_euclidean'], pooled['grad_euclidean']),
            'pooled_pearson_hamming': pearson(pooled['act_hamming'], pooled['grad_euclidean']),
            'pairs_per_video': int(f * (f - 1) // 2)}
    print(f"\nFig. 5: stage 1, {f * (f - 1) // 2} frame pairs per video; Pearson r of activation distance vs "
          f"gradient distance")
    print(f"{'video':<36}{'Euclidean':>10}{'Hamming':>10}")
    for row in fig5['per_video']:
        print(f"{row['video']:<36}{row['pearson_euclidean']:>10.3f}{row['pearson_hamming']:>10.3f}")
    print(f"{'pooled':<36}{fig5['pooled_pearson_euclidean']:>10.3f}{fig5['pooled_pearson_hamming']:>10.3f}")
    os.makedirs(args.out, exist_ok=True)
    plot_fig5(os.path.join(args.out, 'fig5_activation_vs_gradient.png'), pairs, videos.paths, videos.relevance)
    plot_fig6(os.path.join(args.out, 'fig6_gradient_distance.png'), merged, args.block, g)
    result = {'settings': {'model': label, 'weights': args.weights, 'frames': f, 'clusters': g,
                           'cluster_after': model.layout.stage_names[args.cluster_after - 1],
                           'block': model.layout.stage_names[args.block - 1], 'img_size': args.img_size,
                           'videos': videos.paths},
              'fig6': {m: {**fig6[m], 'per_cluster': {k: v.tolist() for k, v in merged[m].items()}}
                       for m in methods},
              'fig6_order_by_mean_distance': order, 'fig6_order_by_size_matched': order_sm, 'fig5': fig5}
    with open(os.path.join(args.out, 'grad_check.json'), 'w') as fh:
        json.dump(result, fh, indent=1)
    return result


if __name__ == '__main__':
    main()
