"""Export a trained checkpoint to ONNX, TorchScript or a torch.export ExportedProgram, and verify the file.

    python tools/export.py CKPT OUT.onnx [--format onnx|torchscript|exported_program] [--exporter dynamo|torchscript]
        [--frames F] [--val_list LIST --root_path ROOT] [--labels FILE]

The model is the one the checkpoint's stored ``args`` build (``builder.checkpoint_args``), with
its clustering switched to the export path (``TemporalClustering(exportable=True)``: the same assignments
with only ops ONNX has). Inputs: ``frames`` ``(N, T*3, H, W)`` float32, normalised as in training, and for
clustering models ``lengths`` ``(N,)`` int64, the real frames of each video (the rest is padding); output
``logits`` ``(N, K)``. N is dynamic; T is dynamic for ``--frames all`` models (fixed at F with ``--frames F``,
as it is for models trained with ``--frames F``), and ``num_segments`` for TSM models.

The file then checks itself against PyTorch: 3 random inputs (batch 1, 2, 3; for dynamic T, three lengths)
and, with ``--val_list`` (or the data set's own list, when it exists), the first validation clip; it passes
when max |logit difference| <= ``--atol`` (1e-4) and the argmax agrees, and the tool says so (exit 1 if not).

ONNX files carry metadata (``onnx`` ``metadata_props``): ``class_names`` and ``args`` (JSON), ``frames``
(an integer or ``dynamic``) and ``inputs``; ``tools/test_models.py --weights OUT.onnx`` reads them to
evaluate the file with onnxruntime on a validation list.

Why the dynamo exporter by default: it is torch's maintained ONNX path and it exports the clustering with a
dynamic frame axis; the TorchScript exporter (``--exporter torchscript``, deprecated in torch) gives the
same graph outputs and exports faster. Both failed on the clustering before its export path existed: the
dynamo exporter on the int64 bit-packing ``view`` and on ``cummax``/stable ``sort``, TorchScript on the view.
"""
import argparse
import json
import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

import builder
from archs import backbone_layout
from ops.checkpoint import load_checkpoint, load_model_weights
from ops.dataset_config import read_class_file
from tools import test_models

FORMATS = ('onnx', 'torchscript', 'exported_program')


def load_trained(path: str, frames: Any = None, root_path: Optional[str] = None,
                 val_list: Optional[str] = None) -> Tuple[nn.Module, argparse.Namespace, Dict[str, Any]]:
    """``(model in eval mode on the CPU, main.py's args, checkpoint)`` exactly as the checkpoint was trained.

    ``frames`` overrides F of a clustering model; ``root_path``/``val_list`` only where the data lives.
    """
    ckpt = load_checkpoint(path)
    args = builder.checkpoint_args(ckpt.get('args'), path, data={'root_path': root_path})
    builder.eval_sizes(args, frames)
    if val_list is not None:
        args.val_list = val_list
    if frames is not None and args.cluster == 'none':
        raise ValueError(f"{path} samples {args.num_segments} frames (--cluster none): --frames does not apply")
    model = builder.build_model(args, test_models.classifier_size(ckpt['state_dict'], path), print_spec=False)
    load_model_weights(model, ckpt['state_dict'], path)
    return model.eval(), args, ckpt


def class_names(ckpt: Dict[str, Any], num_class: int, path: str, labels: Optional[str] = None) -> List[str]:
    """Class names: ``--labels FILE`` (a class file, as ``read_class_file``), else the checkpoint's
    ``class_names`` (main.py stores them), else ``'0'..'K-1'`` with a note naming the file."""
    names = read_class_file(labels) if labels else ckpt.get('class_names')
    if names is None:
        print(f"note: {path} stores no class names (trained before they were saved, or without a class file): "
              f"give --labels FILE to name the classes")
        return [str(i) for i in range(num_class)]
    if len(names) != num_class:
        raise ValueError(f"{labels or path}: {len(names)} class names for a model of {num_class} classes")
    return [str(n) for n in names]


class Exported(nn.Module):
    """The exported graph: ``(frames (N, T*C, H, W)[, lengths (N,) int64]) -> logits (N, K)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.clustering = model.clustering is not None

    def forward(self, frames: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.model(frames, lengths if self.clustering else None)


def example_inputs(model: nn.Module, args: argparse.Namespace, batch: int, frames: int,
                   seed: int = 0) -> Tuple[torch.Tensor, ...]:
    """Random normalised frames (and lengths with some padding) of the shape the model takes."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, frames * model.sample_len, args.img_size, args.img_size, generator=g)
    if model.clustering is None:
        return (x,)
    lengths = torch.randint(max(1, frames // 2), frames + 1, (batch,), generator=g)
    lengths[0] = frames
    return x, lengths


def input_frames(model: nn.Module, args: argparse.Namespace) -> Optional[int]:
    """T of the exported input: num_segments (TSM), F (clustering with an integer F), None (dynamic)."""
    if model.clustering is None:
        return args.num_segments * (1 if args.modality == 'RGB' else model.new_length)
    return args.frames if isinstance(args.frames, int) else None


def export(wrapper: Exported, inputs: Tuple[torch.Tensor, ...], out: str, fmt: str, exporter: str,
           dynamic_frames: bool, opset: Optional[int] = None) -> None:
    """Write ``wrapper`` to ``out`` in ``fmt`` with a dynamic batch (and frame) axis."""
    names = ['frames', 'lengths'][:len(inputs)]
    batch, t = torch.export.Dim('batch', min=1), torch.export.Dim('frames', min=2, max=1 << 20)
    frame_axes = {0: batch, 1: 3 * t} if dynamic_frames else {0: batch}  # RGB: 3 channels per frame
    shapes = {'frames': frame_axes, 'lengths': {0: batch}}
    shapes = {k: shapes[k] for k in names}
    if fmt == 'onnx':
        if exporter == 'dynamo':
            torch.onnx.export(wrapper, inputs, out, dynamo=True, input_names=names, output_names=['logits'],
                              dynamic_shapes=shapes, opset_version=opset, verbose=False)
        else:
            axes = {'frames': {0: 'batch', 1: 'channels'} if dynamic_frames else {0: 'batch'},
                    'lengths': {0: 'batch'}, 'logits': {0: 'batch'}}
            torch.onnx.export(wrapper, inputs, out, dynamo=False, input_names=names, output_names=['logits'],
                              dynamic_axes={k: axes[k] for k in names + ['logits']}, opset_version=opset or 17)
    elif fmt == 'exported_program':
        # size-oblivious: no guard that specialises the batch to != 1 (a batch of one would be refused)
        with torch.fx.experimental._config.patch(backed_size_oblivious=True):
            torch.export.save(torch.export.export(wrapper, inputs, dynamic_shapes=shapes), out)
    else:  # a trace: the batch size stays free through reshape(-1, ...); shapes of other inputs are frozen
        torch.jit.save(torch.jit.trace(wrapper, inputs, check_trace=False), out)


def add_onnx_metadata(path: str, meta: Dict[str, str]) -> None:
    import onnx
    model = onnx.load(path)
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, path)
    onnx.checker.check_model(path)


def read_onnx_metadata(path: str) -> Dict[str, str]:
    """The ``metadata_props`` of an ONNX file written by this tool (no weights loaded)."""
    import onnx
    model = onnx.load(path, load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def onnx_checkpoint(path: str) -> Dict[str, Any]:
    """What ``tools/test_models.py`` needs of an ONNX file written here, in a checkpoint's layout:
    ``{'args', 'class_names', 'frames', 'state_dict': {}}`` from its metadata."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such ONNX file")
    meta = read_onnx_metadata(path)
    if 'args' not in meta or 'class_names' not in meta:
        raise ValueError(f"{path}: no 'args'/'class_names' metadata: not written by tools/export.py")
    return {'args': json.loads(meta['args']), 'class_names': json.loads(meta['class_names']),
            'frames': meta.get('frames'), 'state_dict': {}}


class OnnxModel:
    """An ONNX file run by onnxruntime behind the TSN interface ``tools/test_models.py`` uses:
    ``model(frames, lengths) -> logits`` tensors, ``new_length``, ``sample_len``, ``input_mean``/``std``."""

    def __init__(self, path: str, args: argparse.Namespace, device: torch.device) -> None:
        import onnxruntime as ort
        providers = ['CPUExecutionProvider']
        if device.type == 'cuda' and 'CUDAExecutionProvider' in ort.get_available_providers():
            providers.insert(0, 'CUDAExecutionProvider')
        self.session = ort.InferenceSession(path, providers=providers)
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.new_length = getattr(args, 'new_length', None) or (1 if args.modality == 'RGB' else 5)
        self.sample_len = (3 if args.modality == 'RGB' else 2) * self.new_length
        layout = backbone_layout(args.arch)  # the normalisation of the backbone's weights (Kinetics for 3D CNNs)
        self.input_mean = list(layout.input_mean) if args.modality == 'RGB' else [0.5]
        self.input_std = list(layout.input_std) if args.modality == 'RGB' else [0.226]

    def __call__(self, frames: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        feed = {'frames': frames.detach().cpu().float().numpy()}
        if 'lengths' in self.inputs:
            t = frames.shape[1] // self.sample_len
            lengths = torch.full((frames.shape[0],), t) if lengths is None else lengths
            feed['lengths'] = lengths.detach().cpu().long().numpy()
        return torch.from_numpy(self.session.run(None, feed)[0])

    def spec(self) -> str:
        return f"ONNX ({', '.join(self.session.get_providers())})"

    def eval(self) -> 'OnnxModel':
        return self


def load_exported(path: str, fmt: str):
    """A callable ``(*inputs) -> logits`` for a file written by ``export``."""
    if fmt == 'onnx':
        import onnxruntime as ort
        session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
        names = [i.name for i in session.get_inputs()]
        return lambda *xs: torch.from_numpy(session.run(None, {n: x.numpy() for n, x in zip(names, xs)})[0])
    module = torch.export.load(path).module() if fmt == 'exported_program' else torch.jit.load(path)
    return lambda *xs: module(*xs).detach()


def real_clip(model: nn.Module, args: argparse.Namespace) -> Optional[Tuple[Tuple[torch.Tensor, ...], str]]:
    """The first clip of the validation list with the validation transform, or None when there is no list."""
    config = builder.dataset_config(args)
    if not os.path.isfile(config.val_list):
        return None
    dataset = builder.build_dataset(args, config, model, train=False)
    frames, _, length = dataset[0]
    inputs = (frames[None],) if model.clustering is None else (frames[None], torch.tensor([int(length)]))
    return inputs, dataset.video_list[0].path


def verify(reference: nn.Module, exported, cases: Sequence[Tuple[str, Tuple[torch.Tensor, ...]]],
           atol: float) -> Tuple[bool, float]:
    """Runs each case through both; prints each case's max |logit difference|; (all passed, worst difference)."""
    worst, ok = 0.0, True
    for name, inputs in cases:
        with torch.no_grad():
            ref = reference(*inputs).float()
        out = exported(*inputs).float()
        diff = (out - ref).abs().max().item()
        same = bool((out.argmax(1) == ref.argmax(1)).all())
        ok &= diff <= atol and same
        worst = max(worst, diff)
        print(f"   {name}: max |dlogit| {diff:.2e}, argmax {'equal' if same else 'DIFFERS'}")
    return ok, worst


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="export a trained checkpoint and check the file against PyTorch")
    p.add_argument('checkpoint')
    p.add_argument('out', help="output file (.onnx, .pt for torchscript, .pt2 for exported_program)")
    p.add_argument('--format', default=None, choices=FORMATS, help="default: from OUT's extension, else onnx")
    p.add_argument('--exporter', default='dynamo', choices=['dynamo', 'torchscript'], help="ONNX exporter")
    p.add_argument('--opset', type=int, default=None, help="ONNX opset (default: the exporter's)")
    p.add_argument('--frames', default=None, type=lambda v: v if v == 'all' else int(v),
                   help="clustering: fix F in the file (default: the checkpoint's; 'all' gives a dynamic axis)")
    p.add_argument('--root_path', default=None, help="data root for the real-clip check")
    p.add_argument('--val_list', default=None, help="validation list for the real-clip check")
    p.add_argument('--labels', default=None, help="class file for checkpoints without class_names")
    p.add_argument('--atol', type=float, default=1e-4, help="largest |logit difference| accepted")
    return p


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    cli = build_parser().parse_args(argv)
    fmt = cli.format or {'.pt': 'torchscript', '.pt2': 'exported_program'}.get(os.path.splitext(cli.out)[1], 'onnx')
    model, args, ckpt = load_trained(cli.checkpoint, cli.frames, cli.root_path, cli.val_list)
    if args.modality != 'RGB':
        raise ValueError(f"{cli.checkpoint}: only RGB models are exported (this one is {args.modality})")
    if getattr(args, 'online', False):
        print("note: an --online model is exported as its offline (uni-directional) graph over whole clips")
    if model.clustering is not None:
        model.clustering.exportable = True
    names = class_names(ckpt, model.num_class, cli.checkpoint, cli.labels)
    wrapper = Exported(model).eval()
    frames = input_frames(model, args)
    if frames is None and fmt == 'torchscript':
        raise ValueError(f"{cli.checkpoint} clusters all frames (--frames all): a TorchScript trace fixes the frame "
                         f"count, give --frames F (or use --format onnx|exported_program for a dynamic frame axis)")
    t_example = frames or 2 * args.num_segments + 1
    os.makedirs(os.path.dirname(os.path.abspath(cli.out)), exist_ok=True)
    start = time.time()
    export(wrapper, example_inputs(model, args, 2, t_example), cli.out, fmt, cli.exporter, frames is None, cli.opset)
    print(f"=> wrote {cli.out} ({fmt}{f', {cli.exporter} exporter' if fmt == 'onnx' else ''}) in "
          f"{time.time() - start:.1f} s: {model.spec()}; frames per video: {frames or 'dynamic'}")
    meta = {'class_names': json.dumps(names), 'args': json.dumps(vars(args), default=str),
            'frames': str(frames or 'dynamic'), 'inputs': 'frames (N, T*3, H, W) float32 normalised' +
            (', lengths (N,) int64' if model.clustering is not None else '')}
    if fmt == 'onnx':
        add_onnx_metadata(cli.out, meta)
        print("   onnx.checker: passed; metadata: class_names, args, frames, inputs")
    # dynamic T: three lengths; fixed T: batches 1..3 (a trace fixes every shape but the batch)
    ts = [t_example, args.num_segments + 3, max(2, args.num_segments - 1)] if frames is None else [frames] * 3
    cases = [(f"random batch {b} x {t} frames", example_inputs(model, args, b, t, seed=b))
             for b, t in zip((1, 2, 3), ts)]
    clip = real_clip(model, args)
    if clip is not None:
        cases.append((f"clip {clip[1]}", clip[0]))
    else:
        print("   no validation list found: checked on random inputs only (give --val_list / --root_path)")
    ok, worst = verify(wrapper, load_exported(cli.out, fmt), cases, cli.atol)
    verdict = 'verified' if ok else 'FAILED'
    print(f"{verdict}: {fmt} vs PyTorch on {len(cases)} inputs, max |dlogit| {worst:.2e} "
          f"({'<=' if ok else 'not all <='} {cli.atol:g}, argmax {'equal' if ok else 'see above'})")
    if not ok:
        raise SystemExit(1)
    return {'out': cli.out, 'format': fmt, 'max_diff': worst, 'cases': len(cases), 'frames': frames}


if __name__ == '__main__':
    main()
