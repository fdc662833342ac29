"""Video-level scores -> metrics and reports; weighted ensembles of ``tools/test_models.py --save_scores`` dumps.

    python tools/ensemble.py RGB.npz FLOW.npz --coeff 1 0.5 [--save_scores OUT.npz] [--out_dir D --tag T]

The combined score of a video is ``sum_i coeff_i * scores_i``. Dumps are matched by video path; dumps of
different lists (RGB and flow frame folders) are matched by position and must agree on every label.
Prints top-1, top-5 and mean class accuracy; with ``--out_dir`` also writes test_models' reports.
Numpy and matplotlib only (no torch), so that combining dumps is quick.
"""
import argparse
import csv
import json
import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np


def metrics(scores: np.ndarray, labels: np.ndarray, num_class: int) -> Dict[str, Any]:
    """Top-1/top-5 and mean class accuracy (percent), per-class counts and the confusion matrix."""
    pred = scores.argmax(axis=1)
    k = min(5, scores.shape[1])
    top5 = np.argsort(-scores, axis=1, kind='stable')[:, :k]
    confusion = np.zeros((num_class, num_class), dtype=np.int64)
    np.add.at(confusion, (labels, pred), 1)
    count, correct = confusion.sum(axis=1), np.diag(confusion)
    seen = count > 0
    n = max(len(labels), 1)
    return {'top1': 100.0 * float((pred == labels).sum()) / n,
            'top5': 100.0 * float((top5 == labels[:, None]).any(axis=1).sum()) / n,
            'mean_class_accuracy': 100.0 * float(np.mean(correct[seen] / count[seen])) if seen.any() else 0.0,
            'count': int(len(labels)), 'class_count': count, 'class_correct': correct, 'confusion': confusion}


def write_reports(result: Dict[str, Any], class_names: List[str], out_dir: str, tag: str) -> Dict[str, str]:
    """Per-class CSV, confusion matrix (.npy and a readable .png) and the figures as JSON; returns the paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {kind: os.path.join(out_dir, f'{tag}_{kind}') for kind in
             ('per_class.csv', 'confusion.npy', 'confusion.png', 'result.json')}
    with open(paths['per_class.csv'], 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['class_id', 'class_name', 'videos', 'correct', 'accuracy'])
        for i, name in enumerate(class_names):
            cnt, hit = int(result['class_count'][i]), int(result['class_correct'][i])
            writer.writerow([i, name, cnt, hit, f'{100.0 * hit / cnt:.2f}' if cnt else ''])
    np.save(paths['confusion.npy'], result['confusion'])
    plot_confusion(result['confusion'], class_names, paths['confusion.png'],
                   f"{tag}: top-1 {result['top1']:.2f}%, mean class {result['mean_class_accuracy']:.2f}%")
    with open(paths['result.json'], 'w') as f:
        json.dump({k: result[k] for k in ('top1', 'top5', 'mean_class_accuracy', 'count')}, f, indent=1)
    return paths


def plot_confusion(confusion: np.ndarray, names: List[str], path: str, title: str) -> None:
    """Row-normalised colours, class names on both axes, counts in the cells when there are few classes."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    k = len(names)
    rows = confusion.sum(axis=1, keepdims=True)
    share = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    side = min(max(4.0, 0.45 * k + 2.5), 40.0)
    fig, ax = plt.subplots(figsize=(side + 1.5, side))
    image = ax.imshow(share, cmap='Blues', vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label='share of the true class')
    if k <= 60:
        ax.set_xticks(range(k), labels=names, rotation=45 if k <= 20 else 90, ha='right' if k <= 20 else 'center')
        ax.set_yticks(range(k), labels=names)
    if k <= 30:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(confusion[i, j]), ha='center', va='center', fontsize=9,
                        color='white' if share[i, j] > 0.5 else 'black')
    ax.set_xlabel('predicted class')
    ax.set_ylabel('true class')
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_scores(path: str, scores: np.ndarray, labels: np.ndarray, paths: List[str], class_names: List[str],
                **info: Any) -> None:
    """An ``.npz`` that loads with ``allow_pickle=False``: scores (N, K), labels (N,), paths (N,), classes."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    np.savez(path, scores=scores.astype(np.float64), labels=labels.astype(np.int64), paths=np.array(paths, dtype=str),
             class_names=np.array(class_names, dtype=str), **{k: np.array(v) for k, v in info.items()})


def load_scores(path: str) -> Dict[str, np.ndarray]:
    """A dump of ``test_models --save_scores`` (read without pickle)."""
    with np.load(path, allow_pickle=False) as f:
        missing = {'scores', 'labels', 'paths'} - set(f.files)
        if missing:
            raise ValueError(f"{path}: not a score dump of tools/test_models.py (missing {sorted(missing)})")
        dump = {k: f[k] for k in f.files}
    if dump['scores'].ndim != 2 or len({len(dump['scores']), len(dump['labels']), len(dump['paths'])}) != 1:
        raise ValueError(f"{path}: scores {dump['scores'].shape}, labels {dump['labels'].shape} and paths "
                         f"{dump['paths'].shape} do not fit together")
    return dump


def align(reference: Dict[str, np.ndarray], dump: Dict[str, np.ndarray], path: str) -> np.ndarray:
    """The scores of ``dump`` in the video order of ``reference``."""
    scores = dump['scores']
    if scores.shape[1] != reference['scores'].shape[1]:
        raise ValueError(f"{path}: {scores.shape[1]} classes, the first dump has {reference['scores'].shape[1]}")
    if not np.array_equal(dump['paths'], reference['paths']):
        if sorted(dump['paths'].tolist()) == sorted(reference['paths'].tolist()):
            where = {p: i for i, p in enumerate(dump['paths'].tolist())}
            order = np.array([where[p] for p in reference['paths'].tolist()])
            scores, labels = scores[order], dump['labels'][order]
        elif len(dump['paths']) == len(reference['paths']):
            print(f"note: {path} lists other videos (another modality?): matched by position")
            labels = dump['labels']
        else:
            raise ValueError(f"{path}: {len(dump['paths'])} videos, the first dump has {len(reference['paths'])}")
    else:
        labels = dump['labels']
    if not np.array_equal(labels, reference['labels']):
        bad = int(np.flatnonzero(labels != reference['labels'])[0])
        raise ValueError(f"{path}: label of video {bad} ({reference['paths'][bad]}) differs from the first dump's")
    return scores


def ensemble(paths: List[str], coeff: List[float]) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
    """Weighted sum of the dumps' scores, in the first dump's video order; (scores, first dump)."""
    if len(coeff) != len(paths):
        raise ValueError(f"--coeff has {len(coeff)} values for {len(paths)} score files")
    first = load_scores(paths[0])
    total = coeff[0] * first['scores'].astype(np.float64)
    for path, c in zip(paths[1:], coeff[1:]):
        total = total + c * align(first, load_scores(path), path).astype(np.float64)
    return total, first


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description="weighted ensemble of test_models.py score dumps")
    parser.add_argument('scores', nargs='+', help=".npz files written by test_models.py --save_scores")
    parser.add_argument('--coeff', nargs='+', default=None, help="weights, '1 0.5' or '1,0.5' (default 1s)")
    parser.add_argument('--save_scores', default=None, help="write the combined scores to this .npz")
    parser.add_argument('--out_dir', default=None, help="also write per-class CSV and confusion matrix here")
    parser.add_argument('--tag', default='ensemble')
    args = parser.parse_args(argv)
    coeff = [float(c) for item in (args.coeff or []) for c in item.split(',') if c] or [1.0] * len(args.scores)
    total, first = ensemble(args.scores, coeff)
    names = first['class_names'].tolist() if 'class_names' in first else [str(i) for i in range(total.shape[1])]
    result = metrics(total, first['labels'], total.shape[1])
    if args.out_dir:
        result['files'] = write_reports(result, names, args.out_dir, args.tag)
    if args.save_scores:
        save_scores(args.save_scores, total, first['labels'], first['paths'].tolist(), names,
                    weights=args.scores, coeff=coeff)
    print(f"Class Accuracy {result['mean_class_accuracy']:.02f}%")
    print(f"Overall Prec@1 {result['top1']:.02f}% Prec@5 {result['top5']:.02f}% ({result['count']} videos)")
    result['scores'] = total
    return result


if __name__ == '__main__':
    main()
