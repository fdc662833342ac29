"""Temporal clusters of uniform, slope and cumulative clustering, frame by frame (paper Fig. 3, 7, 8).

For each of the first K validation videos, one PNG: a strip of the frames the model sees, the ground-truth
relevance of each frame (Move4MNIST: informative vs distracting), one coloured bar per method with a colour
per cluster (hatched where a cluster mixes informative and distracting frames), and the Fig. 3 plot: the
neighbour Hamming distances d_k of the clustering point's activations, their cumulative curve C_i, the G
equal shares of cumulative clustering (dashed) and the G-1 largest jumps where slope clustering cuts (green).
With several ``--weights`` (checkpoints of one run at different epochs) the strip gets one cumulative row
per checkpoint, as Fig. 8; the distances and the other rows come from the last checkpoint.

    python tools/visualize_clusters.py move4mnist RGB --root_path D --weights CKPT [CKPT2 ...] \\
        [--num_segments G] --num_videos 4 --out DIR
    python tools/visualize_clusters.py move4mnist RGB --root_path D --arch resnet18 --shift \\
        --pretrain scratch --img_size 64 --num_segments 8 --out DIR     # a fresh model

Summary (printed and ``clusters.json``), per method over the videos: the share of clusters that mix
informative and distracting frames and the mean cluster purity (share of a cluster's frames in its majority
label); uniform grouping is the baseline. This module also holds the set-up both analysis tools share
(flags, model from a checkpoint or from flags, a batch of validation videos with their relevance).
"""
from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

import builder
import opts
from ops.checkpoint import load_checkpoint, load_model_weights
from ops.clustering import TemporalClustering, rule_names
from ops.dataset import collate_videos
from ops.hamming import neighbour_hamming
from ops.models import TSN
from ops.runtime import select_device, set_seed
from ops.sampling import cluster_indices

# ------------------------------------------------------------------------------------ shared set-up
def build_analysis_parser(description: str) -> argparse.ArgumentParser:
    """main.py's parser (``opts.build_parser``) plus the flags both analysis tools take."""
    parser = opts.build_parser()
    parser.description = description
    parser.add_argument('--weights', nargs='*', default=[], metavar='CKPT',
                        help="checkpoint(s); its training arguments decide the network (default: fresh model)")
    parser.add_argument('--out', required=True, help="folder for the PNGs and the JSON")
    parser.add_argument('--num_videos', type=int, default=8, help="first K videos of the validation list")
    parser.add_argument('--relevance', default=None,
                        help="per-frame ground truth (default: ROOT/val_relevance.txt when present)")
    parser.set_defaults(num_segments=None)
    return parser


def complete_args(args: argparse.Namespace, default_clusters: Optional[int]) -> argparse.Namespace:
    """Fill what ``opts.parse_args`` would, and take the network from the (last) checkpoint.

    G = ``--num_segments``, else ``default_clusters`` when given (grad_check: the paper's 16), else the
    checkpoint's, else 8. F = ``--frames`` (default ``opts.DEFAULT_FRAMES``; an integer: every video enters with
    F frames). The checkpoint's other model settings (``opts.MODEL_KEYS``) replace the flags.
    """
    saved = None
    if args.weights:
        saved = load_checkpoint(args.weights[-1]).get('args')
        if not saved:
            raise SystemExit(f"{args.weights[-1]}: checkpoint has no 'args'; build the model from flags instead")
    if args.num_segments is None:
        args.num_segments = default_clusters or (saved or {}).get('num_segments') or 8
    if args.cluster == 'none':
        args.cluster = 'cumulative'  # any method: it only marks where the clustering point is
    if args.frames == 'all':
        raise SystemExit("analysis tools take an integer --frames F (every video enters with F frames)")
    if saved:  # G, F and the method stay this command's
        keys = [k for k in opts.MODEL_KEYS if k not in ('num_segments', 'frames', 'cluster', 'dense_sample')]
        builder.apply_stored(args, saved, {}, args.weights[-1], keys=keys)
    else:
        opts.complete_args(args, opts.build_parser())
    return args


def load_models(args: argparse.Namespace, num_class: int, device: torch.device) -> List[Tuple[str, TSN]]:
    """``(label, model in eval mode)`` per ``--weights`` (label: the epoch), or one fresh model."""
    if not args.weights:
        set_seed(args.seed)
        return [('fresh', builder.build_model(args, num_class, print_spec=False).to(device).eval())]
    models = []
    spec = argparse.Namespace(**{**vars(args), 'pretrain': 'scratch'})  # weights come from the file
    for path in args.weights:
        ckpt = load_checkpoint(path)
        model = builder.build_model(spec, num_class, print_spec=False)
        load_model_weights(model, ckpt['state_dict'], path)
        models.append((f"epoch {ckpt['epoch']}" if 'epoch' in ckpt else Path(path).name, model.to(device).eval()))
    return models


@dataclass
class Videos:
    """A batch of validation videos: frames ``(N, F*C, H, W)``, labels and lengths ``(N,)``, list paths,
    and per video the 0/1 relevance of each of its F positions (None without ground truth)."""
    frames: torch.Tensor
    labels: torch.Tensor
    lengths: torch.Tensor
    paths: List[str]
    relevance: Optional[List[np.ndarray]]


def load_videos(args: argparse.Namespace, model: TSN) -> Tuple[Videos, object]:
    """The first ``--num_videos`` videos of the validation list, as main.py validates (centre crop)."""
    config = builder.dataset_config(args)
    dataset = builder.build_dataset(args, config, model, train=False)
    count = min(args.num_videos, len(dataset))
    frames, labels, lengths = collate_videos([dataset[i] for i in range(count)],
                                             channels=model.sample_len)
    records = dataset.video_list[:count]
    paths = [os.path.relpath(r.path, config.root_path) for r in records]
    rel_file = args.relevance or os.path.join(config.root_path, 'val_relevance.txt')
    relevance = None
    if os.path.isfile(rel_file):
        from tools.make_move4mnist import read_relevance
        table = read_relevance(rel_file)
        if all(p in table for p in paths):
            relevance = [np.asarray(table[p])[cluster_indices(r.num_frames, args.frames, False)[0]]
                         for p, r in zip(paths, records)]
    return Videos(frames, labels, lengths, paths, relevance), config


@torch.no_grad()
def clustering_activations(model: TSN, frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Activations at the clustering point (``--cluster_after``): ``(N, F*C, H, W) -> (N*F, C', H', W')``."""
    n = frames.shape[0]
    x = frames.view((-1, model.sample_len) + frames.shape[-2:])
    return model.run_early(x, x.shape[0] // n, lengths)


def assign_all(acts: torch.Tensor, num_frames: int, num_clusters: int,
               lengths: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
    """``(N*F, ...)`` activations -> ``{method: (N, F) cluster ids}`` for every registered rule (``rule_names()``)."""
    return {m: TemporalClustering(m, num_clusters).assign(acts, num_frames, lengths) for m in rule_names()}


# --------------------------------------------------------------------------------------- purity
def cluster_purity(assign: Sequence[int], relevance: Sequence[int]) -> Tuple[int, int, List[float], List[int]]:
    """Clusters, mixed clusters, per-cluster purity and size of one video (paper Fig. 7: do clusters separate
    informative from distracting frames?). Purity = share of a cluster's frames in its majority label."""
    assign, relevance = np.asarray(assign), np.asarray(relevance)
    purities, sizes, mixed = [], [], 0
    for g in np.unique(assign):
        rel = relevance[assign == g]
        share = rel.mean()
        mixed += int(0 < share < 1)
        purities.append(float(max(share, 1 - share)))
        sizes.append(len(rel))
    return len(purities), mixed, purities, sizes


def purity_summary(assigns: Sequence[np.ndarray], relevances: Sequence[np.ndarray]) -> Dict[str, float]:
    """Over videos: ``mixed_share`` (mixed clusters / clusters), ``mean_purity`` (mean over clusters) and
    ``frame_purity`` (share of frames in their cluster's majority label: a singleton counts once, not as a
    whole cluster, so a method cannot score by cutting off single frames and merging the rest)."""
    total, mixed, purities, sizes = 0, 0, [], []
    for a, r in zip(assigns, relevances):
        n, m, p, z = cluster_purity(a, r)
        total, mixed, purities, sizes = total + n, mixed + m, purities + p, sizes + z
    frame = float(np.dot(purities, sizes) / np.sum(sizes)) if sizes else float('nan')
    return {'clusters': total, 'mixed_clusters': mixed, 'mixed_share': mixed / max(total, 1),
            'mean_purity': float(np.mean(purities)) if purities else float('nan'), 'frame_purity': frame,
            'singletons': int(np.sum(np.asarray(sizes) == 1))}


# ---------------------------------------------------------------------------------------- drawing
def _thumbnails(frames: torch.Tensor, model: TSN) -> np.ndarray:
    """``(F*C, H, W)`` normalised frames -> ``(H, F*W, 3)`` image in [0, 1] (RGB; Flow shows channel 0)."""
    x = frames.view((-1, model.sample_len) + frames.shape[-2:])[:, :3].float().cpu()
    if x.shape[1] == 3:
        mean = torch.tensor(model.input_mean).view(1, 3, 1, 1)
        std = torch.tensor(model.input_std).view(1, 3, 1, 1)
        x = x * std + mean
    else:
        x = (x[:, :1] * model.input_std[0] + model.input_mean[0]).expand(-1, 3, -1, -1)
    return x.clamp(0, 1).permute(2, 0, 3, 1).reshape(x.shape[2], -1, 3).numpy()


def _strip_row(ax, y: float, assign: np.ndarray, relevance: Optional[np.ndarray], length: int) -> None:
    """One method's clusters as coloured cells; cluster boundaries in black, mixed clusters hatched."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    cmap = plt.get_cmap('tab20')
    for i in range(length):
        ax.add_patch(Rectangle((i - 0.5, y - 0.4), 1, 0.8, color=cmap(int(assign[i]) % 20), lw=0))
    for g in np.unique(assign[:length]):
        idx = np.flatnonzero(assign[:length] == g)
        if relevance is not None and 0 < relevance[idx].mean() < 1:
            ax.add_patch(Rectangle((idx[0] - 0.5, y - 0.4), len(idx), 0.8, fill=False, hatch='///', lw=0))
        ax.plot([idx[0] - 0.5] * 2, [y - 0.45, y + 0.45], color='k', lw=1.5)
        ax.text(idx.mean(), y, str(int(g)), ha='center', va='center', fontsize=7)
    ax.plot([length - 0.5] * 2, [y - 0.45, y + 0.45], color='k', lw=1.5)


def draw_video(path: str, title: str, thumbs: np.ndarray, rows: List[Tuple[str, np.ndarray]],
               relevance: Optional[np.ndarray], dist: np.ndarray, num_clusters: int, length: int) -> None:
    """One PNG: frames, relevance, a cluster bar per row, and the Fig. 3 distance/cumulative plot."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    f = thumbs.shape[1] // thumbs.shape[0]
    labels = (['relevance'] if relevance is not None else []) + [name for name, _ in rows]
    width = max(8.0, 0.5 * f + 1.5)
    frame_h = 0.84 * width / f  # thumbnails keep roughly their aspect ratio
    heights = [frame_h, 0.3 * len(labels), 2.6]
    fig, (ax_img, ax_bar, ax_cum) = plt.subplots(3, 1, figsize=(width, sum(heights) + 1.3), sharex=True,
                                                 gridspec_kw={'height_ratios': heights})
    ax_img.imshow(thumbs, extent=(-0.5, f - 0.5, 0, 1), aspect='auto', interpolation='nearest')
    ax_img.set_yticks([])
    legend = ('relevance: green = informative, red = distracting; hatched = cluster mixes both'
              if relevance is not None else 'no per-frame ground truth')
    ax_img.set_title(f'{title}\n{legend}', fontsize=9)
    y = len(labels) - 1
    if relevance is not None:
        colors = np.where(relevance[:length, None] > 0, [[0.2, 0.7, 0.3]], [[0.85, 0.25, 0.2]])
        for i in range(length):
            ax_bar.add_patch(matplotlib.patches.Rectangle((i - 0.5, y - 0.4), 1, 0.8, color=colors[i], lw=0))
        y -= 1
    for _, assign in rows:
        _strip_row(ax_bar, y, assign, relevance, length)
        y -= 1
    ax_bar.set_ylim(-0.6, len(labels) - 0.4)
    ax_bar.set_yticks(range(len(labels)))
    ax_bar.set_yticklabels(labels[::-1], fontsize=8)
    # Fig. 3: d_k between frames k and k+1 (bars, right axis), cumulative C_i at frame i (left axis),
    # the G equal shares of cumulative clustering and the G-1 largest jumps where slope clustering cuts
    d = dist[:length - 1]
    cum = np.concatenate([[0.0], np.cumsum(d)])
    ax_d = ax_cum.twinx()
    ax_d.bar(np.arange(length - 1) + 0.5, d, width=0.6, color='0.8')
    ax_d.set_ylim(0, max(d.max(), 1e-6) * 3)
    ax_d.set_ylabel('neighbour distance d_k (bars)', fontsize=8, color='0.4')
    ax_cum.set_zorder(ax_d.get_zorder() + 1)
    ax_cum.patch.set_visible(False)
    ax_cum.plot(np.arange(length), cum, 'o-', ms=3, color='C0', label='cumulative Hamming distance C_i')
    for g in range(1, num_clusters):
        ax_cum.axhline(g * cum[-1] / num_clusters, ls='--', lw=0.7, color='C1',
                       label='cumulative: G equal shares' if g == 1 else None)
    cuts = np.sort(np.argsort(-d, kind='stable')[:num_clusters - 1])  # ties: the earlier k, as slope_assign
    for j, k in enumerate(cuts):
        ax_cum.plot([k, k + 1], [cum[k], cum[k + 1]], color='g', lw=2.5,
                    label='slope: G-1 largest jumps' if j == 0 else None)
    ax_cum.set_xlim(-0.5, f - 0.5)
    ax_cum.set_xlabel('frame')
    ax_cum.set_ylabel('cumulative Hamming distance')
    ax_cum.legend(fontsize=7, loc='upper left')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------------- main
def main(argv: Optional[List[str]] = None) -> Dict[str, object]:
    """Draw one PNG per video and return (and write) the purity summary."""
    parser = build_analysis_parser("temporal clusters per video (paper Fig. 3, 7, 8)")
    args = complete_args(parser.parse_args(argv), default_clusters=None)
    device = select_device(args.device)
    num_class = builder.dataset_config(args).num_class
    models = load_models(args, num_class, device)
    videos, _ = load_videos(args, models[-1][1])
    f, g = args.frames, args.num_segments
    frames, lengths = videos.frames.to(device), videos.lengths.to(device)
    per_model = [(label, assign_all(clustering_activations(m, frames, lengths), f, g, lengths))
                 for label, m in models]
    last_model = models[-1][1]
    acts = clustering_activations(last_model, frames, lengths)
    dist = neighbour_hamming(acts.view(len(videos.paths), f, -1), lengths).cpu().numpy()
    assigns = {m: a.cpu().numpy() for m, a in per_model[-1][1].items()}
    os.makedirs(args.out, exist_ok=True)
    lens = videos.lengths.tolist()
    for v, path in enumerate(videos.paths):
        rows = [(m, assigns[m][v]) for m in rule_names()]
        if len(models) > 1:
            rows += [(f'cumulative, {label}', a['cumulative'][v].cpu().numpy()) for label, a in per_model]
        rel = videos.relevance[v] if videos.relevance is not None else None
        title = (f"{path} (label {int(videos.labels[v])}): F={f} frames -> G={g} clusters after "
                 f"{args.cluster_after}, {models[-1][0]}")
        draw_video(os.path.join(args.out, f"clusters_{v:03d}_{path.replace(os.sep, '_')}.png"), title,
                   _thumbnails(videos.frames[v], last_model), rows, rel, dist[v], g, lens[v])
    summary: Dict[str, object] = {'frames': f, 'clusters': g, 'cluster_after': args.cluster_after,
                                  'models': [label for label, _ in models], 'videos': videos.paths,
                                  'assignments': {m: a[:, :].tolist() for m, a in assigns.items()}}
    if videos.relevance is not None:
        rels = [r[:n] for r, n in zip(videos.relevance, lens)]
        summary['purity'] = {m: purity_summary([a[:n] for a, n in zip(assigns[m], lens)], rels) for m in rule_names()}
        print(f"{'method':<12}{'clusters':>9}{'singletons':>11}{'mixed':>7}{'mixed share':>13}"
              f"{'mean purity':>13}{'frame purity':>14}")
        for m, s in summary['purity'].items():
            print(f"{m:<12}{s['clusters']:>9}{s['singletons']:>11}{s['mixed_clusters']:>7}"
                  f"{s['mixed_share']:>13.3f}{s['mean_purity']:>13.3f}{s['frame_purity']:>14.3f}")
        print("(uniform is the baseline: a method that follows the content should mix fewer clusters)")
    with open(os.path.join(args.out, 'clusters.json'), 'w') as fh:
        json.dump(summary, fh, indent=1)
    return summary


if __name__ == '__main__':
    main()
