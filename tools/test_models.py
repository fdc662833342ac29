"""Evaluation protocol (TSM's ``test_models.py``): many views per video, score averaging, ensembles, reports.

    python tools/test_models.py [DATASET] --weights CKPT[,CKPT2] [--coeff 1,0.5] [--test_crops 1|3|5|10]
        [--full_res] [--test_clips N | --twice_sample | --dense_sample] [--softmax] [--test_segments T]
        [--max_views_per_batch K] [--save_scores S.npz] [--out_dir D] [data flags] [model flags]

The model is built from the checkpoint's own ``args`` (architecture, shift, clustering, G, F), exactly as
main.py built it for training; flags override only the data (``--root_path --test_list --image_tmpl
--start_index --video_source``) and the test-time sampling (``--test_segments``, ``--frames``,
``--input_size``, ``--scale_size``). A checkpoint without ``args`` (TSM's own) takes main.py's model flags on
this command line (``--arch resnet50 --shift --num_segments 8 ...``); with ``args`` such flags must agree.

Views: clips (``--test_clips``, TSM's ``--num_clips``: one flag, two names; 2 with ``--twice_sample``, 10 with
``--dense_sample`` as TSM) x crops (1 centre; 3 along the long side; 5 = corners + centre; 10 = those and their
mirrors); ``--full_res`` crops squares of ``scale_size`` as TSM. A clip backbone (3D CNN) takes clips of T frames
at its stride ``--sample_rate`` spread evenly over the video (``ops.sampling.clip_indices``; one: the centre
clip), so the field's protocol is ``--test_clips 10 --test_crops 3`` (PySlowFast and mmaction2 also crop at the
full short side: add ``--full_res``). A clustering model sees the whole video in every view, so it takes crops
only. A
video's score is the mean over its views of the logits, or of the class probabilities with ``--softmax``
(TSM takes the softmax after the mean). Several ``--weights`` add their scores weighted by ``--coeff``.

Writes ``{out_dir}/{tag}_per_class.csv``, ``_confusion.npy`` (rows: true class, columns: predicted),
``_confusion.png`` and ``_result.json``; ``--save_scores`` dumps scores, labels and video paths that
``tools/ensemble.py`` combines.
"""
import argparse
import os
import sys
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

import builder
import opts
from ops.checkpoint import CheckpointError, load_checkpoint, load_model_weights
from ops.runtime import select_device
from tools.ensemble import metrics, save_scores, write_reports


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="TSM-style testing of one checkpoint or an ensemble",
                                allow_abbrev=False)
    p.add_argument('dataset', nargs='?', default=None, help="default: the checkpoint's own data set")
    p.add_argument('--weights', required=True, help="checkpoint(s), comma separated for an ensemble; a .onnx "
                   "file of tools/export.py runs in onnxruntime")
    p.add_argument('--coeff', nargs='+', default=None, help="ensemble weights, '1 0.5' or '1,0.5' (default 1s)")
    p.add_argument('--modality', default=None, choices=['RGB', 'Flow'], help="for checkpoints without args")
    p.add_argument('--test_list', default=None, help="list file(s), comma separated per checkpoint")
    p.add_argument('--root_path', default=None)
    p.add_argument('--image_tmpl', default=None)
    p.add_argument('--start_index', default=None, type=opts.nonneg_int)
    p.add_argument('--video_source', default=None, choices=['frames', 'video'])
    p.add_argument('--test_segments', default=None, help="frames per clip (clusters G when clustering), "
                   "comma separated per checkpoint; default: as trained")
    p.add_argument('--frames', default=None, type=opts.frames_type, help="clustering: frames F or 'all'")
    p.add_argument('--input_size', '--img_size', dest='input_size', type=opts.positive_int, default=None)
    p.add_argument('--scale_size', type=opts.positive_int, default=None)
    p.add_argument('--test_crops', type=int, default=1, choices=[1, 3, 5, 10])
    p.add_argument('--full_res', action='store_true', help="crop squares of scale_size (Non-local I3D)")
    p.add_argument('--test_clips', '--num_clips', dest='num_clips', type=opts.positive_int, default=None,
                   help="clips per video (default 1; 10 when dense); a clip backbone's clips are spread evenly "
                        "over the video (the field's protocol: --test_clips 10 --test_crops 3)")
    p.add_argument('--twice_sample', action='store_true', help="two clips: segment centres and starts")
    p.add_argument('--dense_sample', action='store_true', help="I3D dense sampling (also if trained dense)")
    p.add_argument('--softmax', action='store_true', help="average class probabilities instead of logits")
    p.add_argument('--batch_size', type=opts.positive_int, default=1, help="videos per loader batch")
    p.add_argument('-j', '--workers', type=opts.nonneg_int, default=2)
    p.add_argument('--max_views_per_batch', type=opts.nonneg_int, default=0,
                   help="run at most K views (clips x crops of videos) through the model at once; 0: no limit")
    p.add_argument('--max_num', type=int, default=-1, help="test only the first N videos")
    p.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'])
    p.add_argument('--out_dir', default=None, help="report folder (default: the first checkpoint's)")
    p.add_argument('--tag', default=None, help="report file prefix (default from the views)")
    p.add_argument('--save_scores', default=None, help="write scores, labels, paths to this .npz")
    return p


def split_model_flags(argv: List[str], tool: argparse.ArgumentParser) -> Tuple[List[str], List[str]]:
    """Separate main.py's model flags (for checkpoints without args) from this tool's own arguments, so that
    a flag's value is never taken for the DATASET positional. Flags both know belong to the tool."""
    model_actions = opts.build_parser()._option_string_actions
    own, model, i = [], [], 0
    while i < len(argv):
        name = argv[i].split('=', 1)[0]
        action = model_actions.get(name)
        if not argv[i].startswith('-') or name in tool._option_string_actions or action is None:
            own.append(argv[i])
            i += 1
            continue
        end = i + 1
        if '=' not in argv[i] and action.nargs != 0:
            if action.nargs in ('+', '*'):
                while end < len(argv) and not argv[end].startswith('--'):
                    end += 1
            else:
                end += 1 if action.nargs in (None, '?') else int(action.nargs)
        model.extend(argv[i:end])
        i = end
    return own, model


def split_list(value: Optional[str], n: int, name: str, cast=str) -> List[Any]:
    """``'a,b'`` -> one item per checkpoint (a single item is repeated); None -> n Nones."""
    if value is None:
        return [None] * n
    try:
        items = [cast(v) for v in str(value).split(',') if v != '']
    except ValueError:
        raise ValueError(f"--{name} {value!r}: expected {cast.__name__} values, comma separated") from None
    if cast is int and any(v < 1 for v in items):
        raise ValueError(f"--{name} {value!r}: expected integers >= 1")
    if len(items) == 1:
        items *= n
    if len(items) != n:
        raise ValueError(f"--{name} has {len(items)} entries for {n} checkpoints")
    return items


def model_args(ckpt: Dict[str, Any], path: str, cli: argparse.Namespace, extra: List[str]) -> argparse.Namespace:
    """main.py's namespace for the model of ``ckpt`` (``builder.checkpoint_args``), with this command line's
    data paths and test-time sizes."""
    args = builder.checkpoint_args(ckpt.get('args'), path, cli.dataset, cli.modality, extra,
                                   data={k: getattr(cli, k) for k in builder.DATA_KEYS})
    builder.eval_sizes(args, cli.frames, cli.input_size, cli.scale_size)
    args.dense_sample = bool(args.dense_sample or cli.dense_sample)
    return args


def classifier_size(state_dict: Dict[str, torch.Tensor], path: str) -> int:
    for key in ('new_fc.weight', 'module.new_fc.weight', 'base_model.fc.weight', 'module.base_model.fc.weight'):
        if key in state_dict:
            return int(state_dict[key].shape[0])
    raise CheckpointError(f"{path}: no classifier (new_fc.weight) in the state dict")


@torch.no_grad()
def video_scores(model, loader, views: int, clustering: bool, softmax: bool, max_views: int,
                 device: torch.device) -> Tuple[np.ndarray, np.ndarray]:
    """Mean over views of each video's logits (probabilities with ``softmax``): (N, K) scores, (N,) labels."""
    model.eval()
    scores, labels = [], []
    for frames, label, lengths in loader:
        n = frames.shape[0]
        flat = frames.view(n * views, *frames.shape[2:])
        flat_lengths = lengths.repeat_interleave(views) if clustering else None
        step = max_views if max_views > 0 else n * views
        outs = []
        for s in range(0, n * views, step):
            x = flat[s:s + step].to(device, non_blocking=True)
            out = model(x, None if flat_lengths is None else flat_lengths[s:s + step].to(device)).float()
            outs.append((out.softmax(dim=1) if softmax else out).cpu())
        scores.append(torch.cat(outs).view(n, views, -1).mean(dim=1))
        labels.append(label)
    return torch.cat(scores).double().numpy(), torch.cat(labels).numpy()


def evaluate_checkpoint(path: str, cli: argparse.Namespace, extra: List[str], test_list: Optional[str],
                        test_segments: Optional[int], device: torch.device):
    """Scores of one checkpoint: (scores (N, K), labels (N,), video paths, class names)."""
    onnx_file = path.endswith('.onnx')  # a file of tools/export.py, run by onnxruntime
    if onnx_file:
        from tools.export import onnx_checkpoint
        ckpt = onnx_checkpoint(path)
        if test_segments is not None or cli.frames is not None:
            raise ValueError(f"{path}: an exported file has the frame count it was exported with "
                             f"({ckpt['frames']}): --test_segments and --frames do not apply")
    else:
        ckpt = load_checkpoint(path)
    args = model_args(ckpt, path, cli, extra)
    if test_segments is not None:
        args.num_segments = test_segments
    problem = opts.cluster_problem(args.cluster, args.num_segments, args.frames)
    if problem:
        raise ValueError(f"{path}: {problem} (--test_segments, --frames)")
    if test_list is not None:
        args.val_list = test_list
    config = builder.dataset_config(args)
    num_class = len(ckpt['class_names']) if onnx_file else classifier_size(ckpt['state_dict'], path)
    if num_class != config.num_class:
        raise ValueError(f"{path}: the model has {num_class} classes, data set {config.name} "
                         f"({config.root_path}) has {config.num_class}")
    if onnx_file:
        from tools.export import OnnxModel
        model = OnnxModel(path, args, device)
    else:
        model = builder.build_model(args, num_class, print_spec=False)
        load_model_weights(model, ckpt['state_dict'], path)
        model.to(device).eval()
    clustering = args.cluster != 'none'
    if cli.frames is not None and not clustering:
        raise ValueError(f"{path} samples {args.num_segments} frames (--cluster none): --frames does not apply")
    clips = cli.num_clips or (10 if args.dense_sample else 1)
    if cli.twice_sample:
        clips = 2
    if clustering and (clips > 1 or args.dense_sample):
        raise ValueError(f"{path} clusters the whole video (--cluster {args.cluster}): --test_clips, "
                         f"--twice_sample and --dense_sample do not apply; use --test_crops")
    if getattr(args, 'sample_rate', None) is not None and (cli.twice_sample or args.dense_sample):
        raise ValueError(f"{path} is a clip backbone ({args.arch}): it samples clips of {args.num_segments} frames "
                         f"at stride {args.sample_rate}; --twice_sample and --dense_sample are TSN's, use --test_clips")
    if cli.test_crops == 10 and config.direction_sensitive:
        print(f"warning: 10 crops include mirrored crops, which swap left and right in {config.name}")
    views = clips * cli.test_crops
    dataset = builder.build_test_dataset(args, config, model, cli.test_crops, cli.full_res, clips, cli.twice_sample)
    if cli.max_num > 0:
        dataset.video_list = dataset.video_list[:cli.max_num]
    loader = builder.views_loader(dataset, views, model.sample_len, cli.batch_size, cli.workers, device.type == 'cuda')
    print(f"=> {path}: {model.spec()}; {len(dataset)} videos x {views} views ({clips} clips x "
          f"{cli.test_crops} crops{', full res' if cli.full_res else ''})")
    scores, labels = video_scores(model, loader, views, clustering, cli.softmax, cli.max_views_per_batch, device)
    names = config.classes or [str(i) for i in range(num_class)]
    return scores, labels, [r.path for r in dataset.video_list], names


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    parser = build_parser()
    own, extra = split_model_flags(list(sys.argv[1:] if argv is None else argv), parser)
    cli = parser.parse_args(own)
    weights = [w for w in cli.weights.split(',') if w]
    if not weights:
        raise ValueError("--weights names no checkpoint")
    coeff = [float(c) for item in (cli.coeff or []) for c in item.split(',') if c] or [1.0] * len(weights)
    if len(coeff) != len(weights):
        raise ValueError(f"--coeff has {len(coeff)} values for {len(weights)} checkpoints")
    lists = split_list(cli.test_list, len(weights), 'test_list')
    segments = split_list(cli.test_segments, len(weights), 'test_segments', int)
    device = select_device(cli.device)
    total, labels, paths, names = None, None, None, None
    for path, c, test_list, segs in zip(weights, coeff, lists, segments):
        scores, these_labels, these_paths, these_names = evaluate_checkpoint(path, cli, extra, test_list, segs,
                                                                            device)
        if labels is not None and not np.array_equal(labels, these_labels):
            raise ValueError(f"{path}: its test videos (labels) differ from those of {weights[0]}")
        if len(weights) > 1:
            print(f"   top-1 alone: {metrics(scores, these_labels, scores.shape[1])['top1']:.2f}%")
        total = c * scores if total is None else total + c * scores
        labels, paths, names = these_labels, paths or these_paths, names or these_names
    result = metrics(total, labels, total.shape[1])
    clips = cli.num_clips or (10 if cli.dense_sample else 1)
    tag = cli.tag or (f"test_crops{cli.test_crops}_clips{2 if cli.twice_sample else clips}"
                      f"{'_dense' if cli.dense_sample else ''}{'_fullres' if cli.full_res else ''}"
                      f"{'_softmax' if cli.softmax else ''}{f'_ensemble{len(weights)}' if len(weights) > 1 else ''}")
    out_dir = cli.out_dir or os.path.dirname(os.path.abspath(weights[0]))
    result['files'] = write_reports(result, names, out_dir, tag)
    if cli.save_scores:
        save_scores(cli.save_scores, total, labels, paths, names, weights=weights, coeff=coeff, softmax=cli.softmax)
        result['files']['scores'] = cli.save_scores
    print(f"Class Accuracy {result['mean_class_accuracy']:.02f}%")
    print(f"Overall Prec@1 {result['top1']:.02f}% Prec@5 {result['top5']:.02f}% ({result['count']} videos)")
    print(f"=> reports: {', '.join(result['files'].values())}")
    result.update(scores=total, labels=labels, paths=paths)
    return result


if __name__ == '__main__':
    main()
