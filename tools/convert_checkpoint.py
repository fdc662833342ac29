"""Turn a checkpoint into one that ``torch.load(weights_only=True)`` reads (docs/DESIGN.md §5).

    python tools/convert_checkpoint.py IN OUT [--trust] [--module_prefix keep|strip|add]
    python tools/convert_checkpoint.py X3D_XS.pyth OUT --from pytorchvideo --arch x3d_xs [--slowfast_alpha A]

A file that needs pickled code (an ``argparse.Namespace`` as TSM-era checkpoints sometimes hold, numpy
scalars, a whole pickled model, a custom class) can only be read by running code from it, so this tool does
that only with ``--trust``. It then keeps tensors and plain values (numbers, strings, None, lists, tuples,
dicts): a Namespace becomes a dict, numpy values become numbers or tensors, a pickled ``nn.Module`` becomes
its state dict, and anything else is dropped and listed. The output is written atomically and read back
with ``weights_only=True`` before the tool reports success.

``--module_prefix add`` writes TSM's layout (``module.`` before every parameter name, as
``nn.DataParallel`` saves it), which TSM's own ``main.py --resume`` and ``test_models.py`` expect;
``strip`` removes it. Our loaders accept both.

``--from pytorchvideo`` reads one of pytorchvideo's published Kinetics-400 checkpoints (``X3D_XS.pyth`` ...
``X3D_L.pyth``, ``SLOWFAST_8x8_R50.pyth``, ``SLOWFAST_4x16_R50.pyth``: a dict whose ``model_state`` is the
network's state dict) and writes our checkpoint: ``base_model.`` before every backbone name (our X3D and
SlowFast use pytorchvideo's names), the Kinetics classifier as ``new_fc``, and ``args`` naming the arch (and
SlowFast's alpha), so that ``main.py --tune_from OUT`` starts from it (the 400-way classifier is replaced when
the class count differs).
"""
import argparse
import os
import pickle
import sys
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn

from ops.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

PLAIN = (bool, int, float, str, bytes, type(None))
DROPPED = object()


def to_plain(obj: Any, where: str, dropped: List[str]) -> Any:
    """``obj`` with everything ``weights_only`` loading cannot represent converted or dropped (see module doc).

    ``where`` names the position for the report; dropped positions are appended to ``dropped``.
    """
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, np.generic):  # before PLAIN: np.float64 is a float subclass, yet pickles as numpy
        return obj.item()
    if type(obj) in PLAIN:
        return obj
    for base in PLAIN[1:-1]:  # subclasses (an IntEnum, a str subclass) pickle as their class: keep the value
        if isinstance(obj, base):
            return base(obj)
    if isinstance(obj, argparse.Namespace):
        obj = vars(obj)
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in 'biufc':
            return torch.from_numpy(np.ascontiguousarray(obj))
        dropped.append(f"{where} (numpy array of dtype {obj.dtype})")
        return DROPPED
    if isinstance(obj, (torch.Size, torch.dtype, torch.device)):
        return tuple(obj) if isinstance(obj, torch.Size) else str(obj)
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if not isinstance(key, PLAIN):
                dropped.append(f"{where}[{key!r}] (key of type {type(key).__name__})")
                continue
            value = to_plain(value, f"{where}[{key!r}]", dropped)
            if value is not DROPPED:
                out[key] = value
        return out
    if isinstance(obj, (list, tuple)):
        items = [to_plain(v, f"{where}[{i}]", dropped) for i, v in enumerate(obj)]
        items = [v for v in items if v is not DROPPED]
        return items if isinstance(obj, list) else tuple(items)
    dropped.append(f"{where} ({type(obj).__module__}.{type(obj).__qualname__})")
    return DROPPED


def set_module_prefix(state_dict: dict, mode: str) -> dict:
    """``keep`` the names, ``strip`` DataParallel's ``module.`` prefix, or ``add`` it (TSM's layout)."""
    if mode == 'keep':
        return state_dict
    stripped = {(k[len('module.'):] if k.startswith('module.') else k): v for k, v in state_dict.items()}
    return stripped if mode == 'strip' else {'module.' + k: v for k, v in stripped.items()}


def convert(src: str, dst: str, trust: bool = False, module_prefix: str = 'keep') -> List[str]:
    """Convert ``src`` into the weights-only loadable ``dst``; returns what was dropped.

    Raises:
        CheckpointError: ``src`` needs pickled code and ``trust`` is False, cannot be read, or holds no
            state dict.
    """
    try:
        obj = load_checkpoint(src)  # safe path first: nothing to trust
    except CheckpointError as err:
        if 'refused to load' not in str(err):
            raise
        if not trust:
            raise CheckpointError(
                f"{src}: it holds pickled objects, and reading it runs code stored in the file. Rerun with "
                f"--trust only if you know where the file comes from ({err})") from None
        try:
            obj = torch.load(src, map_location='cpu', weights_only=False)
        except Exception as err2:  # a class that no longer exists, a torn file ...
            raise CheckpointError(f"{src}: could not be read even with --trust "
                                  f"({type(err2).__name__}: {err2})") from err2
    dropped: List[str] = []
    if isinstance(obj, nn.Module):
        obj = {'state_dict': obj.state_dict()}
    out = to_plain(obj, 'checkpoint', dropped)
    if isinstance(out, dict) and 'state_dict' not in out and out and all(torch.is_tensor(v) for v in out.values()):
        out = {'state_dict': out}  # a bare state dict
    if not isinstance(out, dict) or not isinstance(out.get('state_dict'), dict) or not out['state_dict']:
        raise CheckpointError(f"{src}: no state dict of tensors found (got {type(obj).__name__})")
    out['state_dict'] = set_module_prefix(out['state_dict'], module_prefix)
    save_checkpoint(out, dst)
    load_checkpoint(dst)  # proves the result is weights_only-loadable
    return dropped


def read_pytorchvideo(src: str, trust: bool = False) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """The ``model_state`` of a pytorchvideo checkpoint (weights-only read unless ``trust``) and its training
    config, flattened to 'SECTION.KEY' -> value (``config_values``; {} when the file holds none).

    Raises:
        CheckpointError: unreadable, pickled code without ``trust``, or no ``model_state`` of tensors.
    """
    if not os.path.isfile(src):
        raise CheckpointError(f"{src}: no such file")
    try:
        obj = torch.load(src, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        if not trust:
            raise CheckpointError(f"{src}: it holds pickled objects, and reading it runs code stored in the file. "
                                  f"Rerun with --trust only if you know where the file comes from") from err
        obj = torch.load(src, map_location='cpu', weights_only=False)
    except Exception as err:
        raise CheckpointError(f"{src}: not a readable checkpoint ({type(err).__name__}: {err})") from err
    state = obj.get('model_state') if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"{src}: not a pytorchvideo checkpoint: expected a dict whose 'model_state' is a "
                              f"state dict of tensors, got {type(obj).__name__} with keys "
                              f"{list(obj)[:5] if isinstance(obj, dict) else '-'}")
    return state, config_values(obj.get('cfg'))


def config_values(cfg: Any) -> Dict[str, str]:
    """PySlowFast's stored config (the YAML text of ``cfg.dump()``, or a nested dict) -> {'DATA.NUM_FRAMES': '4',
    ...}: the two top levels, values as text; anything else -> {}."""
    if isinstance(cfg, dict):
        return {f'{k}.{kk}': str(vv) for k, v in cfg.items() if isinstance(v, dict) for kk, vv in v.items()}
    if not isinstance(cfg, str):
        return {}
    values, section = {}, None
    for line in cfg.splitlines():
        key, colon, value = line.strip().partition(':')
        if not colon or line.lstrip().startswith('#'):
            continue
        indent, value = len(line) - len(line.lstrip()), value.strip()
        if indent == 0:
            section = key
            if value.startswith('{') and value.endswith('}'):  # an older PyYAML's flow style: {ALPHA: 8, ...}
                for item in value[1:-1].split(','):
                    inner, colon, inner_value = item.partition(':')
                    if colon:
                        values[f'{key}.{inner.strip()}'] = inner_value.strip()
        elif section is not None and indent == 2:
            values[f'{section}.{key}'] = value
    return values


def check_variant(arch: str, state: Dict[str, torch.Tensor], cfg: Dict[str, str], alpha: Optional[int],
                  src: str, notes: Optional[List[str]] = None) -> Optional[int]:
    """The SlowFast alpha to build (``alpha``, else the file's config's, else the zoo's for its lateral kernel:
    7 -> 4, 5 -> 8); for X3D, the file's config (clip frames, training crop) checked against ``arch``, as
    X3D-XS, -S and -M share every weight shape. Raises ``CheckpointError`` when the config names another known
    variant; a config that matches none is appended to ``notes`` (the file may be a fine-tuned one)."""
    if arch.startswith('x3d'):
        from archs.x3d import X3D_SPECS
        spec = X3D_SPECS[arch]
        trained = (cfg.get('DATA.NUM_FRAMES'), cfg.get('DATA.TRAIN_CROP_SIZE'))
        if trained == (None, None):
            if notes is not None and arch != 'x3d_l':  # X3D-L alone has its own depth
                notes.append(f"{src} holds no training config, and X3D-XS, -S and -M share every weight shape: "
                             f"the file is taken as {arch} (its head window and input size), unchecked")
            return None
        if trained == (str(spec.frames), str(spec.train_size)):
            return None
        found = [a for a, sp in X3D_SPECS.items() if trained == (str(sp.frames), str(sp.train_size))]
        said = f"{src}: its config trained {trained[0] or '?'} frames at {trained[1] or '?'} px, {arch} " \
               f"{spec.frames} at {spec.train_size}"
        if found:
            raise CheckpointError(f"{said}: the file holds {found[0]}; pass --arch {found[0]}")
        if notes is not None:
            notes.append(f"{said}, no published X3D's: the head window and input size are {arch}'s")
        return None
    if arch != 'slowfast_r50':
        return alpha
    from archs.slowfast import FUSION_KERNELS
    by_kernel = {k: a for a, k in FUSION_KERNELS.items()}
    weight = state.get('blocks.0.multipathway_fusion.conv_fast_to_slow.weight')
    kernel = None if weight is None or weight.dim() != 5 else weight.shape[2]
    stored = cfg.get('SLOWFAST.ALPHA')
    if stored is not None:
        if stored not in {str(a) for a in FUSION_KERNELS}:
            raise CheckpointError(f"{src}: its config has SLOWFAST.ALPHA {stored!r}; this converter knows the "
                                  f"published alphas {sorted(FUSION_KERNELS)}")
        if alpha is not None and stored != str(alpha):
            raise CheckpointError(f"{src}: its config has SLOWFAST.ALPHA {stored}, --slowfast_alpha {alpha}")
        if kernel is not None and kernel != FUSION_KERNELS[int(stored)]:
            raise CheckpointError(f"{src}: its config has SLOWFAST.ALPHA {stored}, whose published lateral kernel "
                                  f"is {FUSION_KERNELS[int(stored)]}, but its lateral connections have {kernel}")
        return int(stored)
    if alpha is None and kernel is not None:
        if kernel not in by_kernel:
            raise CheckpointError(f"{src}: its lateral connections have temporal kernel {kernel}, not a "
                                  f"published one ({by_kernel}): pass --slowfast_alpha")
        return by_kernel[kernel]
    return alpha


def from_pytorchvideo(state: Dict[str, torch.Tensor], arch: str, src: str,
                      alpha: Optional[int] = None) -> Dict[str, Any]:
    """pytorchvideo's state dict -> our checkpoint for ``TSN(base_model=arch)``: ``base_model.`` + its names, its
    classifier as ``new_fc``; checked name by name and shape by shape against our network (``CheckpointError``
    naming the keys otherwise). ``alpha``: SlowFast's (None: ``check_variant``'s or 4, the 8x8 model's)."""
    from archs import backbone_layout, backbone_option_names
    from ops.checkpoint import load_model_weights
    from ops.models import TSN
    classifier = backbone_layout(arch).classifier + '.'
    mapped = {('new_fc.' + k[len(classifier):] if k.startswith(classifier) else 'base_model.' + k): v.detach().cpu()
              for k, v in state.items()}
    if 'new_fc.weight' not in mapped:
        raise CheckpointError(f"{src}: no classifier {classifier}weight: is it a {arch} checkpoint?")
    options = {} if alpha is None else {'alpha': alpha}
    model = TSN(mapped['new_fc.weight'].shape[0], 8, 'RGB', base_model=arch, pretrain='scratch',
                backbone_options=options)
    load_model_weights(model, dict(mapped), src)  # proves every name and shape fits ours
    stored: Dict[str, Any] = {'arch': arch, 'dataset': 'kinetics', 'modality': 'RGB'}
    if 'alpha' in backbone_option_names(arch):
        stored['slowfast_alpha'] = model.base_model.alpha
        stored['slowfast_slow_frames'] = 'linspace'  # the zoo's protocol: evaluation of this file uses it
    return {'state_dict': mapped, 'args': stored, 'source': os.path.basename(src)}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help="checkpoint to convert")
    parser.add_argument('dst', help="where to write the weights_only-loadable checkpoint")
    parser.add_argument('--trust', action='store_true',
                        help="allow running the pickled code in SRC (only for files from a trusted source)")
    parser.add_argument('--module_prefix', default='keep', choices=['keep', 'strip', 'add'],
                        help="'add' writes TSM's DataParallel layout (module.base_model...)")
    parser.add_argument('--from', dest='source', default=None, choices=['pytorchvideo'],
                        help="SRC is pytorchvideo's checkpoint (its 'model_state') of --arch: write our checkpoint")
    parser.add_argument('--arch', default=None, choices=['x3d_xs', 'x3d_s', 'x3d_m', 'x3d_l', 'slowfast_r50'],
                        help="with --from pytorchvideo: the network SRC holds")
    parser.add_argument('--slowfast_alpha', type=int, default=None, choices=[4, 8],
                        help="with --arch slowfast_r50: 4 for SLOWFAST_8x8_R50.pyth, 8 for 4x16 (default: the "
                             "file's config's SLOWFAST.ALPHA, else the zoo's for its lateral kernel, 7: 4, 5: 8)")
    args = parser.parse_args(argv)
    if os.path.abspath(args.src) == os.path.abspath(args.dst):
        parser.error("DST must differ from SRC (keep the original)")
    if (args.source is None) != (args.arch is None):
        parser.error("--from pytorchvideo and --arch go together")
    if args.slowfast_alpha is not None and args.arch != 'slowfast_r50':
        parser.error("--slowfast_alpha only applies with --arch slowfast_r50")
    if args.source == 'pytorchvideo':
        try:
            state, cfg = read_pytorchvideo(args.src, args.trust)
            notes: List[str] = []
            alpha = check_variant(args.arch, state, cfg, args.slowfast_alpha, args.src, notes)
            for note in notes:
                print(f"note: {note}", file=sys.stderr)
            out = from_pytorchvideo(state, args.arch, args.src, alpha)
            save_checkpoint(out, args.dst)
        except CheckpointError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(f"=> wrote {args.dst}: pytorchvideo's {args.arch} ({len(out['state_dict'])} tensors) as base_model.* "
              f"and new_fc ({out['state_dict']['new_fc.weight'].shape[0]} classes); start from it with --tune_from")
        return 0
    try:
        dropped = convert(args.src, args.dst, args.trust, args.module_prefix)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for item in dropped:
        print(f"dropped {item}")
    print(f"=> wrote {args.dst} (weights_only-loadable; {len(dropped)} object(s) dropped)")
    return 0


if __name__ == '__main__':
    sys.exit(main())
