"""FLOPs, parameters and activation memory of the model a training command builds (paper Table 1).

Takes main.py's own arguments, builds exactly that model (random weights: no figure here depends on them)
and feeds it one batch of random frames, no data set needed:

    python tools/profile_model.py move4mnist RGB --arch resnet18 --img_size 224 --shift --pretrain scratch \\
        --cluster cumulative --frames 32 --num_segments 8 [--chunk_frames 8] [--json] [-b N]

Input: (N, T*C, S, S) with T = --num_segments for ``--cluster none``, T = --frames when clustering
(``--frames all`` needs ``--video_frames L``); N = -b (default 1 here, not main.py's 256).

Figures, per video (batch figures divided by N):
  * GMACs: multiply-adds of convolutions and linear layers (torch's FlopCounterMode counts FLOPs = 2 MACs),
    of the network as the paper counts it (unchunked); the clustering's batched matmul (the cluster means) is
    reported apart in MMACs. With --chunk_frames, ``gmacs_executed`` is what the chunked forward really runs
    (the assignment pass and the halo frames run the early layers again; backward recomputes them once more).
  * activation memory: the bytes autograd holds for backward at the end of the forward pass in training mode,
    counted with saved-tensor hooks, each storage once (views share it), without parameters, buffers and the
    input frames (their size is ``input_mb``). With --chunk_frames, add what backward re-creates for the
    largest chunk (its window with the shift halo, run unchunked under the same hooks): the sum is the
    peak estimate ``activation_mb_per_video``. Gradients, workspaces and the transients of no-gradient work
    (the chunked assignment pass) are not included: the CUDA peak shows them.
  * on CUDA: the true peak of one training step, max_memory_allocated minus the baseline of model, optimizer
    state, gradients (kept allocated, zeroed) and input.
MB = 1e6 bytes and GB = 1e9 bytes, as the paper's GB. --no_flops skips the counts, whose unchunked forward
needs the memory of all F frames at once (without gradient). --meta builds the model on the meta device and counts
GMACs and parameters without arithmetic (seconds for a 3D CNN on the CPU); the memory figures are then null, and the
clustering rules, which read the activations, cannot run there.

Clip backbones (3D CNNs, ``--arch r3d_18 ...``) are counted per clip of T frames; ``published`` gives the published
figure of the configuration where there is one (``tools/published_costs.py``: torchvision's model table, C3D, I3D).
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import sys
import weakref
from collections import defaultdict
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

import builder
import opts
from ops.runtime import select_device
from ops.train_step import autocast, grad_scaler, train_step
from tools.published_costs import (PAPER_TABLE1, PUBLISHED_CLIP_GMACS, frames_per_input,  # noqa: F401 (re-exported)
                                   paper_row, published_row)

MB = 1e6


def _add_own_flags(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument('--json', action='store_true', help="print exactly one JSON line")
    p.add_argument('--video_frames', type=int, default=None, help="frames of the video for --frames all")
    p.add_argument('--num_class', type=int, default=None, help="class count (default: the data set's)")
    p.add_argument('--breakdown', action='store_true', help="saved MB per module (what dominates)")
    p.add_argument('--no_flops', action='store_true', help="skip the FLOP counts (memory only)")
    p.add_argument('--no_cuda_step', action='store_true', help="skip the CUDA training-step peak")
    p.add_argument('--meta', action='store_true', help="count GMACs and parameters on the meta device (no "
                   "arithmetic, no memory figures; --cluster none only)")
    return p


def build_profile_parser() -> argparse.ArgumentParser:
    """main.py's parser plus this tool's flags (for --help and validation)."""
    parser = opts.build_parser()
    parser.description = "profile the model of a training command: GMACs, parameters, activation memory"
    _add_own_flags(parser)
    parser.set_defaults(batch_size=None)
    return parser


def parse_profile_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """main.py's arguments completed by ``opts.parse_args``, plus this tool's (-b defaults to 1 here)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    full = build_profile_parser().parse_args(argv)  # validates every flag, ours included
    own, rest = _add_own_flags(argparse.ArgumentParser(add_help=False, allow_abbrev=False)).parse_known_args(argv)
    args = opts.parse_args(rest)
    for key, value in vars(own).items():
        setattr(args, key, value)
    args.batch_size = full.batch_size or 1
    if args.meta and args.cluster != 'none':
        build_profile_parser().error("--meta: the clustering reads the activations, which the meta device does not "
                                     "have; profile --cluster runs without --meta")
    if args.frames == 'all' and not args.video_frames:
        build_profile_parser().error("--frames all: give the video's length with --video_frames L")
    return args


def num_classes(args: argparse.Namespace) -> int:
    """--num_class, else the data set's (class file when present, else its known count; no data needed)."""
    if getattr(args, 'num_class', None):
        return args.num_class
    try:  # the class count does not depend on the modality; RGB has lists for every known data set
        return builder.dataset_config(args, modality='RGB').num_class
    except (ValueError, OSError) as err:
        raise SystemExit(f"tools/profile_model.py: no class count for {args.dataset!r} ({err}); "
                         f"give --num_class N") from err


def make_model_and_input(args: argparse.Namespace, device: torch.device
                         ) -> Tuple[nn.Module, torch.Tensor, Optional[torch.Tensor]]:
    """The training command's model in train mode, and a random batch (N, T*C, S, S) + lengths (or None)."""
    spec = argparse.Namespace(**vars(args))
    spec.pretrain = 'scratch'  # the structure is the command's; the weights change no figure here
    torch.manual_seed(args.seed)
    with device if device.type == 'meta' else contextlib.nullcontext():  # meta: no weights are initialised
        model = builder.build_model(spec, num_classes(args), print_spec=False)
    model = model.to(device).train()
    t = frames_per_input(args)
    x = torch.randn(args.batch_size, t * model.sample_len, args.img_size, args.img_size, device=device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    lengths = torch.full((args.batch_size,), t, dtype=torch.long, device=device) if args.frames == 'all' else None
    return model, x, lengths


# ------------------------------------------------------------------------------------------------ FLOPs
def count_macs(model: nn.Module, x: torch.Tensor, lengths: Optional[torch.Tensor] = None,
               chunked: bool = False) -> Tuple[int, int]:
    """Multiply-adds of one forward on the batch: (conv + linear, batched matmul of the clustering).

    ``chunked=False`` counts the network (chunking switched off, as the paper counts); True counts what the
    model's own forward executes. Elementwise ops, pooling and BatchNorm are not counted (as the paper).
    """
    saved_chunk = getattr(model, 'chunk_frames', 0)
    if not chunked:
        model.chunk_frames = 0
    counter = FlopCounterMode(display=False)
    try:
        with counter, torch.no_grad():
            model(x, lengths)
    finally:
        model.chunk_frames = saved_chunk
    flops = {str(k): v for k, v in counter.get_flop_counts()['Global'].items()}
    bmm = flops.pop('aten.bmm', 0)
    return sum(flops.values()) // 2, bmm // 2


# ------------------------------------------------------------------------------------------ saved bytes
class SavedTensorCounter:
    """Counts the bytes autograd saves for backward inside the ``with`` block.

    ``bytes_alive()`` is the size of the distinct storages still held by the graph (a tensor saved twice or
    views of one storage count once), without those in ``exclude`` (parameters, buffers, input frames).
    With ``model``, each storage is charged to the module that saved it first (``by_module``).
    """

    def __init__(self, exclude: Tuple[torch.Tensor, ...] = (), model: Optional[nn.Module] = None) -> None:
        self._exclude = {self._key(t) for t in exclude}
        self._saved: List[Tuple[weakref.ref, int, int, str]] = []
        self._stack: List[str] = []
        self._handles = []
        if model is not None:
            for name, m in model.named_modules():
                self._handles.append(m.register_forward_pre_hook(self._enter(name or '(model)')))
                self._handles.append(m.register_forward_hook(self._leave))
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    @staticmethod
    def _key(t: torch.Tensor) -> int:
        return t.untyped_storage().data_ptr()

    def _enter(self, name: str) -> Callable:
        def hook(module, inputs):
            self._stack.append(name)
        return hook

    def _leave(self, module, inputs, output) -> None:
        if self._stack:
            self._stack.pop()

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        if t.layout == torch.strided and t.device.type != 'meta':
            storage = t.untyped_storage()
            self._saved.append((weakref.ref(t), storage.data_ptr(), storage.nbytes(),
                                self._stack[-1] if self._stack else '(outside modules)'))
        return t

    def __enter__(self) -> 'SavedTensorCounter':
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)
        for h in self._handles:
            h.remove()

    def _alive(self) -> Dict[int, Tuple[int, str]]:
        out: Dict[int, Tuple[int, str]] = {}
        for ref, key, nbytes, where in self._saved:
            if ref() is not None and key not in self._exclude and key not in out:
                out[key] = (nbytes, where)
        return out

    def bytes_alive(self) -> int:
        return sum(nbytes for nbytes, _ in self._alive().values())

    def by_module(self, depth: int = 3) -> Dict[str, int]:
        """Bytes per module name cut to ``depth`` components (``base_model.layer1.0``)."""
        out: Dict[str, int] = defaultdict(int)
        for nbytes, where in self._alive().values():
            out['.'.join(where.split('.')[:depth])] += nbytes
        return dict(out)


def model_state(model: nn.Module) -> Tuple[torch.Tensor, ...]:
    return tuple(model.parameters()) + tuple(model.buffers())


def saved_bytes(model: nn.Module, fn: Callable[[], torch.Tensor], exclude: Tuple[torch.Tensor, ...],
                breakdown: bool = False) -> Tuple[int, Dict[str, int]]:
    """Bytes autograd holds after ``fn()`` (run with gradient), and optionally their split by module."""
    counter = SavedTensorCounter(exclude=model_state(model) + exclude, model=model if breakdown else None)
    with torch.enable_grad(), counter:
        out = fn()
    total, split = counter.bytes_alive(), counter.by_module() if breakdown else {}
    del out
    return total, split


def largest_chunk_window(t: int, chunk: int, halo: int) -> Tuple[int, int, int]:
    """(lo, hi, start) of the largest window [start-halo, start+K+halo) clipped to [0, T) (ops/chunked.py)."""
    best = (0, 0, 0)
    for s in range(0, t, chunk):
        lo, hi = max(0, s - halo), min(t, s + chunk + halo)
        if hi - lo > best[1] - best[0]:
            best = (lo, hi, s)
    return best


def recompute_bytes(model: nn.Module, x: torch.Tensor, lengths: Optional[torch.Tensor], amp: str = 'none',
                    breakdown: bool = False) -> Tuple[int, Dict[str, int]]:
    """Bytes backward re-creates for the largest chunk of --chunk_frames: the early layers (unchunked) on its
    window with halo, its K central frames and their weighted sum, as ops/chunked.py's recomputed part."""
    from ops.chunked import shift_halo
    n, chunk = x.shape[0], model.chunk_frames
    t = x.shape[1] // model.sample_len
    lo, hi, s = largest_chunk_window(t, chunk, shift_halo(model.early_modules()))
    k = min(chunk, t - s)
    frames = x.view(n, t, model.sample_len, *x.shape[-2:])
    win = frames[:, lo:hi]
    win_len = None if lengths is None else (lengths - lo).clamp(min=1, max=hi - lo)
    weights = torch.full((n, model.num_segments, k), 1.0 / k, device=x.device)

    def part() -> torch.Tensor:
        with autocast(amp, x.device):
            y = model.run_early(win.reshape(n * (hi - lo), *win.shape[2:]), hi - lo, win_len)
            y = y.view(n, hi - lo, *y.shape[1:])[:, s - lo:s - lo + k]
            return torch.bmm(weights.to(y.dtype), y.reshape(n, k, -1))
    return saved_bytes(model, part, exclude=(x, weights), breakdown=breakdown)


def activation_memory(model: nn.Module, x: torch.Tensor, lengths: Optional[torch.Tensor] = None,
                      amp: str = 'none', breakdown: bool = False) -> Dict[str, object]:
    """Activation memory of one training forward on the batch, in bytes for the whole batch.

    Returns ``saved`` (held by autograd at the end of the forward), ``recompute`` (largest chunk re-created
    in backward; 0 without chunking), ``peak_estimate`` (their sum), ``input`` (the frames, not included),
    and with ``breakdown`` the saved bytes per module (``saved_by_module``, ``recompute_by_module``).
    """
    def forward() -> torch.Tensor:
        with autocast(amp, x.device):
            return model(x, lengths)
    saved, split = saved_bytes(model, forward, exclude=(x,), breakdown=breakdown)
    t = x.shape[1] // model.sample_len
    chunked = model.clustering is not None and 0 < model.chunk_frames < t
    recompute, rsplit = recompute_bytes(model, x, lengths, amp, breakdown) if chunked else (0, {})
    out: Dict[str, object] = {'saved': saved, 'recompute': recompute, 'peak_estimate': saved + recompute,
                              'input': x.numel() * x.element_size()}
    if breakdown:
        out['saved_by_module'], out['recompute_by_module'] = split, rsplit
    return out


# --------------------------------------------------------------------------------------- training step
def cuda_step_peak(model: nn.Module, x: torch.Tensor, lengths: Optional[torch.Tensor],
                   args: argparse.Namespace) -> int:
    """Peak bytes of one CUDA training step above model + optimizer state + gradients + input."""
    optimizer = builder.build_optimizer(args, model)
    scaler = grad_scaler(args.amp, x.device)
    labels = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    step = functools.partial(train_step, model, optimizer, scaler, x, labels, lengths, args.amp, args.clip_gradient,
                             keep_grads=True)  # gradients zeroed in place: they stay allocated, in the baseline
    step()  # allocates the optimizer state and the gradients
    torch.cuda.synchronize(x.device)
    base = torch.cuda.memory_allocated(x.device)
    torch.cuda.reset_peak_memory_stats(x.device)
    step()
    torch.cuda.synchronize(x.device)
    return torch.cuda.max_memory_allocated(x.device) - base


# --------------------------------------------------------------------------------------------- report
def profile(args: argparse.Namespace) -> Dict[str, object]:
    """Every figure of the report for parsed arguments (see the module docstring)."""
    device = torch.device('meta') if args.meta else select_device(args.device)
    model, x, lengths = make_model_and_input(args, device)
    n, t = x.shape[0], frames_per_input(args)
    chunked = model.clustering is not None and 0 < args.chunk_frames < t
    res: Dict[str, object] = {
        'config': {'dataset': args.dataset, 'modality': args.modality, 'arch': args.arch,
                   'img_size': args.img_size, 'shift': args.shift, 'cluster': args.cluster,
                   'num_segments': args.num_segments, 'frames': t, 'cluster_after': args.cluster_after,
                   'chunk_frames': args.chunk_frames if chunked else 0, 'batch': n, 'device': str(device),
                   'amp': args.amp, 'partial_bn': not args.no_partialbn,
                   'slowfast_alpha': getattr(args, 'slowfast_alpha', None)},
        'params_m': sum(p.numel() for p in model.parameters()) / 1e6,
    }
    if not args.no_flops:
        macs, bmm = count_macs(model, x, lengths)
        res['gmacs_per_video'] = macs / n / 1e9
        res['cluster_mmacs'] = bmm / n / 1e6
        res['gmacs_executed_per_video'] = count_macs(model, x, lengths, chunked=True)[0] / n / 1e9 \
            if chunked else res['gmacs_per_video']
    res['input_mb'] = x.numel() * x.element_size() / n / MB
    res['saved_mb'] = res['recompute_mb'] = res['activation_mb_per_video'] = res['cuda_step_peak_mb'] = None
    res['paper_table1'], res['published'] = paper_row(args), published_row(args)
    if args.meta:  # saved-tensor storages have no addresses on the meta device: nothing to count
        return res
    mem = activation_memory(model, x, lengths, args.amp, breakdown=args.breakdown)
    res['saved_mb'] = mem['saved'] / n / MB
    res['recompute_mb'] = mem['recompute'] / n / MB
    res['activation_mb_per_video'] = mem['peak_estimate'] / n / MB
    if args.breakdown:
        res['saved_by_module_mb'] = {k: v / n / MB for k, v in mem['saved_by_module'].items()}
        res['recompute_by_module_mb'] = {k: v / n / MB for k, v in mem['recompute_by_module'].items()}
    if device.type == 'cuda' and not args.no_cuda_step:
        res['cuda_step_peak_mb'] = cuda_step_peak(model, x, lengths, args) / n / MB
    return res


def format_report(res: Dict[str, object]) -> str:
    """The human table: one figure a line, per video, with the paper's Table 1 figure where it applies."""
    c, paper = res['config'], res['paper_table1'] or {}
    what = (f"{c['cluster']} clustering after {c['cluster_after']}, {c['frames']} frames -> "
            f"{c['num_segments']} clusters" if c['cluster'] != 'none' else f"TSM/TSN, {c['frames']} frames")
    chunk = f", chunks of {c['chunk_frames']} frames" if c['chunk_frames'] else ''
    lines = [f"{c['arch']} {c['modality']} {c['img_size']}px, {what}{chunk}, batch {c['batch']}, {c['device']}"
             f"{', amp ' + c['amp'] if c['amp'] != 'none' else ''}",
             f"{'per video':<34}{'measured':>12}   paper Table 1" + (f" ({paper['name']})" if paper else '')]

    def row(label: str, value, ref=None, fmt='{:12.2f}') -> None:
        text = fmt.format(value) if value is not None else f"{'n/a':>12}"
        if ref is not None and value is not None:
            text += f"   {ref:.2f} ({100 * (value / ref - 1):+.1f}%)"
        lines.append(f"{label:<34}{text}")
    if 'gmacs_per_video' in res:
        row('GMACs (conv + linear)', res['gmacs_per_video'], paper.get('gflops'))
        if c['chunk_frames']:
            row('GMACs executed by chunked forward', res['gmacs_executed_per_video'])
        row('clustering bmm MMACs', res['cluster_mmacs'])
        if res.get('published'):
            pub = res['published']
            lines.append(f"{'published GMACs per clip':<34}{pub['gmacs']:12.2f}   "
                         f"({100 * (res['gmacs_per_video'] / pub['gmacs'] - 1):+.1f}%; {pub['source']})")
    row('parameters (M)', res['params_m'])
    row('input frames MB (not counted below)', res['input_mb'], fmt='{:12.1f}')
    row('saved for backward MB', res['saved_mb'], fmt='{:12.1f}')
    if c['chunk_frames']:
        row('recomputed chunk MB', res['recompute_mb'], fmt='{:12.1f}')
    row('activation MB (estimate)', res['activation_mb_per_video'], fmt='{:12.1f}')
    if paper.get('memory_gb'):
        lines[-1] += f"   {paper['memory_gb']:.2f} GB (measured otherwise: compare ratios to TSM-all)"
    row('CUDA step peak MB', res['cuda_step_peak_mb'], fmt='{:12.1f}')
    for key in ('saved_by_module_mb', 'recompute_by_module_mb'):
        if res.get(key):
            lines.append(f"{key.replace('_mb', '')} (MB):")
            lines += [f"  {k:<32}{v:12.1f}" for k, v in sorted(res[key].items(), key=lambda kv: -kv[1])]
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> Dict[str, object]:
    args = parse_profile_args(argv)
    res = profile(args)
    print(json.dumps(res) if args.json else format_report(res))
    return res


if __name__ == '__main__':
    main()
