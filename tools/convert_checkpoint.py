"""Turn a checkpoint into one that ``torch.load(weights_only=True)`` reads (docs/DESIGN.md §5).

    python tools/convert_checkpoint.py IN OUT [--trust] [--module_prefix keep|strip|add]

A file that needs pickled code (an ``argparse.Namespace`` as TSM-era checkpoints sometimes hold, numpy
scalars, a whole pickled model, a custom class) can only be read by running code from it, so this tool does
that only with ``--trust``. It then keeps tensors and plain values (numbers, strings, None, lists, tuples,
dicts): a Namespace becomes a dict, numpy values become numbers or tensors, a pickled ``nn.Module`` becomes
its state dict, and anything else is dropped and listed. The output is written atomically and read back
with ``weights_only=True`` before the tool reports success.

``--module_prefix add`` writes TSM's layout (``module.`` before every parameter name, as
``nn.DataParallel`` saves it), which TSM's own ``main.py --resume`` and ``test_models.py`` expect;
``strip`` removes it. Our loaders accept both.
"""
import argparse
import os
import sys
from typing import Any, List, Optional

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


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help="checkpoint to convert")
    parser.add_argument('dst', help="where to write the weights_only-loadable checkpoint")
    parser.add_argument('--trust', action='store_true',
                        help="allow running the pickled code in SRC (only for files from a trusted source)")
    parser.add_argument('--module_prefix', default='keep', choices=['keep', 'strip', 'add'],
                        help="'add' writes TSM's DataParallel layout (module.base_model...)")
    args = parser.parse_args(argv)
    if os.path.abspath(args.src) == os.path.abspath(args.dst):
        parser.error("DST must differ from SRC (keep the original)")
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
