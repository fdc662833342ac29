"""Training-step speed and memory of TSM-8/16/all and ours-{uniform,slope,cumulative}-{8,16}, +/- chunking.

    python tools/benchmark.py                                  # CPU-sized: resnet18, 112 px, batch 1, 32 frames
    python tools/benchmark.py --img_size 224 --batch 8 --device cuda --amp bf16 --long --out bench.md
    python tools/benchmark.py --arch r3d_18 --configs tsm-8 tsm-all cumulative-8   # a clip backbone (3D CNN)

With a clip backbone, tsm-N is the network on one clip of N frames (no shift) and ours cluster after its stage 1;
it has no chunked rows.

Each configuration is the model main.py builds from the same flags (built through tools/profile_model.py),
trained on random frames with main.py's step and optimizer (ops/train_step.py: forward, backward, optimizer
step): median step time after --warmup steps as videos/s;
activation memory per video (tools/profile_model.activation_memory: bytes saved for backward, + the largest
recomputed chunk with chunking; input frames excluded); on CUDA the true step peak; each as a ratio to
TSM-all (TSM on all F frames). The clustering's share of a step is timed in separate steps with hooks
(CPU: synchronous wall time; CUDA: GPU time between two events, which does not stall the step's queue):
TemporalClustering's forward (assignment + mean), its backward (the mean's: from the gradient of its output
to that of its input, timed with tensor hooks; the share counts forward and backward) and its assignment
alone; with chunking (share: the assignment), the assignment
functions ops/chunked.py calls (sign codes, distances, rule, weights) and, apart, its no-gradient pass of
the early layers that feeds them. --long adds frames F = 32, 128, 512, 1024 at G = 8 with
chunking: memory, and time with --time_long. It prints figures and asserts nothing about speed.
MB = 1e6 bytes.
"""
from __future__ import annotations

import argparse
import shlex
import statistics
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import torch

import builder
from archs import arch_names, backbone_layout
from ops import clustering, compiled
from ops.runtime import select_device
from ops.train_step import grad_scaler, train_step
from tools.profile_model import MB, activation_memory, cuda_step_peak, make_model_and_input, parse_profile_args

LONG_FRAMES = (32, 128, 512, 1024)


VARIANTS = {'chunk': "--chunk_frames K", 'fused': "--fused_assign on", 'eager': "--fused_assign off",
            'norule': "fused: only the distances compiled, the rule and the mean's weights eager"}


def config_names(chunk: int) -> List[str]:
    """The default configurations: tsm-8, tsm-16, tsm-all, <method>-<G>, and with chunk > 0 <method>-<G>+chunk.

    Any of ours also takes other ``+variant`` suffixes (``VARIANTS``, ``is_config``): +fused / +eager are
    main.py --fused_assign on / off (the plain name is main.py's default, auto: fused on CUDA when Triton is
    installed); +norule compiles only the distances of a fused clustering, not its rule and mean weights.
    """
    ours = [f'{m}-{g}' for m in clustering.rule_names() for g in (8, 16)]
    return ['tsm-8', 'tsm-16', 'tsm-all'] + ours + ([f'{o}+chunk' for o in ours] if chunk else [])


def is_config(name: str, chunk: int = 8) -> bool:
    """A default name, or one of ours with ``VARIANTS`` (each at most once; not both fused and eager; chunk
    only when --chunk_frames ``chunk`` > 0)."""
    base, *variants = name.split('+')
    return (base in config_names(0) and (not variants or not base.startswith('tsm'))
            and (chunk > 0 or 'chunk' not in variants)
            and all(v in VARIANTS for v in variants) and len(set(variants)) == len(variants)
            and not {'fused', 'eager'} <= set(variants))


def config_argv(name: str, opts: argparse.Namespace, frames: Optional[int] = None) -> List[str]:
    """main.py's arguments for a configuration name (``frames`` overrides --frames)."""
    f = frames or opts.frames
    shift = [] if backbone_layout(opts.arch).clip else ['--shift']  # a 3D CNN has no TSM shift
    argv = ['move4mnist', 'RGB', '--arch', opts.arch, '--img_size', str(opts.img_size), *shift,
            '--pretrain', 'scratch', '--device', opts.device, '--amp', opts.amp, '-b', str(opts.batch)]
    base, *variants = name.split('+')
    kind, _, g = base.partition('-')
    if kind == 'tsm':
        argv += ['--num_segments', str(f if g == 'all' else int(g))]
    else:
        argv += ['--cluster', kind, '--num_segments', g, '--frames', str(f)]
        if 'chunk' in variants:
            argv += ['--chunk_frames', str(opts.chunk_frames)]
        for v in {'fused', 'eager'} & set(variants):
            argv += ['--fused_assign', 'on' if v == 'fused' else 'off']
    return argv + shlex.split(opts.model_args)


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


@contextmanager
def clustering_timers(model: torch.nn.Module, device: torch.device) -> Iterator[Dict[str, float]]:
    """Accumulates seconds spent in the clustering's forward (``cluster``) and backward (``cluster_backward``),
    its assignment (``assign``) and, with chunking, the no-gradient pass of the early layers that feeds the
    assignment (``assign_pass``)."""
    acc = {'cluster': 0.0, 'cluster_backward': 0.0, 'assign': 0.0, 'assign_pass': 0.0}
    patched = []
    events = []  # CUDA: (key, start, end), read once the step has been synchronised

    def timed(fn, key, only_no_grad=False):
        def wrapper(*a, **kw):
            if only_no_grad and torch.is_grad_enabled():
                return fn(*a, **kw)
            if device.type == 'cuda':  # GPU time of the part, without a sync that would stall the queue
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                out = fn(*a, **kw)
                end.record()
                events.append((key, start, end))
                return out
            _sync(device)
            t0 = time.perf_counter()
            out = fn(*a, **kw)
            _sync(device)
            acc[key] += time.perf_counter() - t0
            return out
        return wrapper

    def mark():  # a point in time: a CUDA event on the current stream, or the wall clock
        if device.type == 'cuda':
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def with_backward(forward):
        """The backward runs between the gradient of the output arriving and that of the input leaving."""
        def wrapper(x, *a, **kw):
            out = forward(x, *a, **kw)
            if torch.is_grad_enabled() and x.requires_grad and out.requires_grad:
                begin = {}

                def start(grad):
                    begin['t'] = mark()
                out.register_hook(start)

                def finish(grad):
                    if 't' not in begin:
                        return
                    if device.type == 'cuda':
                        events.append(('cluster_backward', begin['t'], mark()))
                    else:
                        acc['cluster_backward'] += time.perf_counter() - begin['t']
                x.register_hook(finish)
            return out
        return wrapper

    clustering = model.clustering
    if clustering is not None:  # instance attributes shadow the methods
        clustering.forward = with_backward(timed(clustering.forward, 'cluster'))
        clustering.assign = timed(clustering.assign, 'assign')
        patched += [(clustering, 'forward', None), (clustering, 'assign', None)]
    if clustering is not None and model.chunk_frames:
        import ops.chunked as chunked
        for fname in ('sign_codes', 'hamming_from_codes', 'cumulative_assign', 'slope_assign', 'uniform_assign',
                      'cluster_weights'):
            if hasattr(chunked, fname):
                patched.append((chunked, fname, getattr(chunked, fname)))
                setattr(chunked, fname, timed(getattr(chunked, fname), 'assign'))
        if hasattr(chunked, '_early'):
            patched.append((chunked, '_early', chunked._early))
            chunked._early = timed(chunked._early, 'assign_pass', only_no_grad=True)
    try:
        yield acc
        _sync(device)
        for key, start, end in events:
            acc[key] += start.elapsed_time(end) / 1e3
    finally:
        for obj, attr, orig in patched:
            if orig is None:
                delattr(obj, attr)
            else:
                setattr(obj, attr, orig)


def measure(name: str, argv: List[str], opts: argparse.Namespace, time_it: bool = True) -> Dict[str, object]:
    """One configuration: memory per video, and (``time_it``) median step time and clustering share."""
    args = parse_profile_args(argv)
    device = select_device(args.device)
    model, x, lengths = make_model_and_input(args, device)
    if 'norule' in name.split('+'):  # no main.py flag sets it
        model.clustering.fuse_rule = False
    n = x.shape[0]
    mem = activation_memory(model, x, lengths, args.amp)
    row: Dict[str, object] = {'name': name, 'frames': x.shape[1] // model.sample_len,
                              'clusters': args.num_segments, 'chunk_frames': args.chunk_frames,
                              'activation_mb': mem['peak_estimate'] / n / MB, 'saved_mb': mem['saved'] / n / MB,
                              'recompute_mb': mem['recompute'] / n / MB, 'input_mb': mem['input'] / n / MB,
                              'cuda_peak_mb': None, 'step_ms': None, 'videos_per_s': None,
                              'cluster_ms': None, 'cluster_backward_ms': None, 'assign_ms': None,
                              'assign_pass_ms': None, 'cluster_share': None,
                              'argv': ' '.join(argv)}
    if device.type == 'cuda':
        row['cuda_peak_mb'] = cuda_step_peak(model, x, lengths, args) / n / MB
    if not time_it:
        return row
    optimizer = builder.build_optimizer(args, model)
    scaler = grad_scaler(args.amp, device)
    labels = torch.zeros(n, dtype=torch.long, device=device)

    def step() -> float:
        _sync(device)
        t0 = time.perf_counter()
        train_step(model, optimizer, scaler, x, labels, lengths, args.amp, args.clip_gradient, keep_grads=True)
        _sync(device)
        return time.perf_counter() - t0
    for _ in range(opts.warmup):
        step()
    times = [step() for _ in range(opts.iters)]
    row['step_ms'] = 1e3 * statistics.median(times)
    row['videos_per_s'] = n / statistics.median(times)
    if model.clustering is not None:
        shares, parts = [], []
        for _ in range(opts.iters):
            with clustering_timers(model, device) as acc:
                total = step()
            parts.append(dict(acc))  # complete only here: CUDA events are read on leaving the block
            shares.append((acc['cluster'] + acc['cluster_backward'] or acc['assign']) / total)
        for key in ('cluster', 'cluster_backward', 'assign', 'assign_pass'):  # None: the part is not in this path
            ms = 1e3 * statistics.median(p[key] for p in parts)
            row[f'{key}_ms'] = ms if ms > 0 else None
        row['cluster_share'] = statistics.median(shares)
    return row


def _fmt(value, spec: str) -> str:
    return '-' if value is None else format(value, spec)


def markdown_table(rows: List[Dict[str, object]], ref: Optional[Dict[str, object]], title: str) -> str:
    """Rows as a markdown table with each configuration's ratio to ``ref`` (TSM-all)."""
    head = ['config', 'F', 'G', 'K', 'step ms', 'videos/s', 'speed x', 'act. MB/video', 'mem x',
            'saved MB', 'recompute MB', 'input MB', 'CUDA peak MB', 'peak x', 'cluster ms', 'cluster bwd ms',
            'assign ms', 'assign pass ms', 'cluster share']
    lines = [f'### {title}', '', '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]

    def ratio(row, key):
        if ref is None or row.get(key) is None or not ref.get(key):
            return None
        return row[key] / ref[key]
    for r in rows:
        share = None if r['cluster_share'] is None else 100 * r['cluster_share']
        cells = [r['name'], str(r['frames']), str(r['clusters']), str(r['chunk_frames'] or '-'),
                 _fmt(r['step_ms'], '.1f'), _fmt(r['videos_per_s'], '.2f'), _fmt(ratio(r, 'videos_per_s'), '.2f'),
                 _fmt(r['activation_mb'], '.1f'), _fmt(ratio(r, 'activation_mb'), '.2f'),
                 _fmt(r['saved_mb'], '.1f'), _fmt(r['recompute_mb'], '.1f'), _fmt(r['input_mb'], '.1f'),
                 _fmt(r['cuda_peak_mb'], '.1f'), _fmt(ratio(r, 'cuda_peak_mb'), '.2f'),
                 _fmt(r['cluster_ms'], '.2f'), _fmt(r['cluster_backward_ms'], '.2f'), _fmt(r['assign_ms'], '.2f'),
                 _fmt(r['assign_pass_ms'], '.1f'),
                 _fmt(share, '.1f') + ('%' if share is not None else '')]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--arch', default='resnet18', choices=arch_names(),
                   help="a backbone of archs/ (a clip backbone, e.g. r3d_18: tsm-N is a clip of N frames, no shift, "
                        "no +chunk rows and no --long)")
    p.add_argument('--img_size', type=int, default=112, help="crop size (paper: 224)")
    p.add_argument('--batch', type=int, default=1, help="videos per step")
    p.add_argument('--frames', type=int, default=32, help="frames F per video (TSM-all and ours)")
    p.add_argument('--chunk_frames', type=int, default=8, help="K of the +chunk rows (0: no chunked rows)")
    p.add_argument('--iters', type=int, default=5, help="timed steps (median)")
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'])
    p.add_argument('--amp', default='none', choices=['none', 'fp16', 'bf16'])
    p.add_argument('--configs', nargs='+', default=None, metavar='NAME',
                   help="subset by name (tsm-8 tsm-16 tsm-all uniform-8 ... cumulative-16+chunk; only when named: "
                        "+fused/+eager: --fused_assign on/off; +norule: only the distances fused; e.g. "
                        "cumulative-8+fused+norule)")
    p.add_argument('--model_args', default='', help="extra main.py flags for every model, e.g. '--npb'")
    p.add_argument('--long', action='store_true', help="the long-video series F = 32..1024 at G = 8, chunked")
    p.add_argument('--long_frames', type=int, nargs='+', default=list(LONG_FRAMES))
    p.add_argument('--long_method', default='cumulative', choices=clustering.rule_names())
    p.add_argument('--time_long', action='store_true', help="also time the long series")
    p.add_argument('--out', default=None, metavar='FILE.md', help="also write the tables as markdown")
    p.add_argument('--loader', action='store_true', help="not here: data loading is benchmarked elsewhere")
    return p


def run(argv: Optional[List[str]] = None) -> Dict[str, object]:
    """Run the benchmark; returns {'rows': [...], 'long': [...], 'markdown': str}."""
    opts = build_parser().parse_args(argv)
    if opts.loader:
        print("--loader: not benchmarked by this tool (data loading has its own benchmark)")
    clip = backbone_layout(opts.arch).clip
    chunk = 0 if clip else opts.chunk_frames  # the chunked path is 2D's (ops/models.py refuses it for clips)
    if clip and (opts.long or any('+chunk' in c for c in opts.configs or ())):
        raise SystemExit(f"tools/benchmark.py: {opts.arch} is a clip backbone (a 3D CNN), which has no chunked path: "
                         f"drop --long and the +chunk configurations")
    names = config_names(chunk)
    chosen = opts.configs or names
    unknown = [c for c in chosen if not is_config(c, chunk)]
    if unknown:
        raise SystemExit(f"tools/benchmark.py: unknown --configs {unknown}; known: "
                         f"{' '.join(config_names(8))}, each of ours with +variant suffixes from "
                         f"{' '.join(VARIANTS)} (e.g. cumulative-8+fused+norule; +chunk needs --chunk_frames > 0)")
    device = select_device(opts.device)
    print(f"{opts.arch}, {opts.img_size} px, batch {opts.batch}, F = {opts.frames}, {device}, amp {opts.amp}",
          flush=True)
    rows = []
    for name in chosen:
        rows.append(measure(name, config_argv(name, opts), opts))
        print(f"  {name}: {_fmt(rows[-1]['videos_per_s'], '.2f')} videos/s, "
              f"{rows[-1]['activation_mb']:.1f} MB/video", flush=True)
    ref = next((r for r in rows if r['name'] == 'tsm-all'), None)
    if ref is None:  # the reference is always TSM-all: measure it (memory only) when not chosen
        ref = measure('tsm-all', config_argv('tsm-all', opts), opts, time_it=False)
    title = (f"{opts.arch} {opts.img_size}px, batch {opts.batch}, F={opts.frames}, {device}, amp {opts.amp} "
             f"(ratios x: to TSM-all)")
    tables = [markdown_table(rows, ref, title)]
    long_rows: List[Dict[str, object]] = []
    if opts.long:
        k = opts.chunk_frames or 8
        lopts = argparse.Namespace(**{**vars(opts), 'chunk_frames': k})
        for f in opts.long_frames:
            name = f'{opts.long_method}-8+chunk'
            long_rows.append(measure(f'{name} F={f}', config_argv(name, lopts, frames=f), opts,
                                     time_it=opts.time_long))
            print(f"  long F={f}: {long_rows[-1]['activation_mb']:.1f} MB/video", flush=True)
        tables.append(markdown_table(long_rows, long_rows[0], f"long videos: G=8, K={k} "
                                     f"(ratios x: to F={opts.long_frames[0]}; activation MB excludes the input)"))
    if compiled.fused_failed():
        tables.append("WARNING: torch.compile of the clustering failed in this run: every +fused row (and, on "
                      "CUDA, every default row) measured the eager path")
    text = '\n\n'.join(tables)
    print(text)
    if opts.out:
        Path(opts.out).write_text(text + '\n', encoding='utf-8')
    return {'rows': rows, 'ref': ref, 'long': long_rows, 'markdown': text}


if __name__ == '__main__':
    run()
