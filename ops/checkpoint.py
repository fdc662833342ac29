"""Checkpoints: atomic writes, safe reads, TSM-compatible state dicts (docs/DESIGN.md §5).

A checkpoint is ``{'epoch', 'arch', 'state_dict', 'optimizer', 'best_prec1'}`` as in TSM, plus ``args``
(the whole argument namespace as a dict), ``scaler`` (AMP), ``rng`` (random states) and ``iteration``
(batches of ``epoch`` already done, for mid-epoch checkpoints). It is read with ``weights_only=True``: a
file that would need to run pickled code is refused.
"""
import os
import contextlib
import pickle
import random
import re
import shutil
import signal
import tempfile
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional

import numpy as np
import torch
import torch.nn as nn


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the model; the message names the file."""


def save_checkpoint(state: Dict[str, Any], path: str) -> None:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, fsync, then rename.

    A run killed at any moment leaves either the previous file or the new one, never a torn file. A Ctrl-C
    that arrives during the write is held until the file is in place, then raised as ``KeyboardInterrupt``:
    torch's zip writer turns an interrupt inside ``torch.save`` into an unrelated ``RuntimeError``.
    """
    def write(tmp: str) -> None:
        with open(tmp, 'wb') as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
    _replace_atomically(path, write)


def link_checkpoint(src: str, path: str) -> None:
    """Make ``path`` the same file as the checkpoint ``src`` just written, atomically, without a second copy.

    ``path`` becomes a hard link to ``src``'s file: ``save_checkpoint`` always replaces ``src`` by a rename, so
    the file ``path`` names is never changed afterwards, and a ResNet-50 run keeps one 135 MB file per best
    epoch instead of two. Where the file system has no hard links, the file is copied (atomically too).
    """
    def link(tmp: str) -> None:
        os.remove(tmp)  # os.link makes the name itself
        try:
            os.link(src, tmp)
        except OSError:  # no hard links here (some network and FAT file systems), or src on another device
            shutil.copyfile(src, tmp)
            with open(tmp, 'rb+') as f:
                os.fsync(f.fileno())
    _replace_atomically(path, link)


def _replace_atomically(path: str, fill: Callable[[str], None]) -> None:
    """``fill(tmp)`` a temporary file beside ``path``, then rename it to ``path``, with Ctrl-C held meanwhile;
    on any failure the temporary file is removed and ``path`` is left as it was."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with _ctrl_c_deferred():
        fd, tmp = tempfile.mkstemp(prefix='.tmp-', suffix='.pth.tar', dir=folder)
        os.close(fd)
        try:
            fill(tmp)
            os.replace(tmp, path)
        except BaseException:
            if os.path.lexists(tmp):
                os.remove(tmp)
            raise
        _fsync_folder(folder)


@contextlib.contextmanager
def _ctrl_c_deferred() -> Iterator[None]:
    """Hold SIGINT for the duration of the block and raise ``KeyboardInterrupt`` after it, if one came.

    Only the main thread can install signal handlers; elsewhere (and where SIGINT is ignored) the block runs
    as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous in (signal.SIG_IGN, None):
        yield
        return
    caught: List[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        if callable(previous):
            previous(caught[0], None)  # Python's default handler raises KeyboardInterrupt
        raise KeyboardInterrupt


def check_writable(folder: str, flag: str = '') -> None:
    """Create ``folder`` and write and remove a probe file in it, so that a run learns before its first step,
    not at its first save, that it cannot write there.

    Raises:
        CheckpointError: naming the folder (and ``flag``, the option that chose it) and the cause.
    """
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix='.write-probe-', dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise CheckpointError(f"{folder}: cannot write in this folder{f' ({flag})' if flag else ''}: "
                              f"{err.strerror or err}") from err


def remove_stale_temporaries(folder: str) -> List[str]:
    """Delete the ``.tmp-*.pth.tar`` files that saves killed mid-write left in ``folder``; their names.

    Call it only where no other process is saving into ``folder`` (main.py: rank 0, before training).
    """
    if not os.path.isdir(folder):
        return []
    stale = sorted(n for n in os.listdir(folder) if n.startswith('.tmp-') and n.endswith('.pth.tar'))
    for name in stale:
        os.remove(os.path.join(folder, name))
    return stale


def _fsync_folder(folder: str) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str, map_location: Any = 'cpu') -> Dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``; a bare state dict is wrapped as one."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r'Unsupported global: GLOBAL (\S+)', str(err))
        if found is None:  # torn or foreign bytes also end up in the unpickler
            raise CheckpointError(f"{path}: not a readable checkpoint (corrupt or truncated file?): "
                                  f"{str(err).strip().splitlines()[-1][:200]}") from err
        raise CheckpointError(
            f"{path}: refused to load: it holds a pickled {found.group(1)} object, and unpickling it could run "
            f"code from the file, which weights_only loading forbids. If you trust the file, convert it once "
            f"with `python tools/convert_checkpoint.py {path} OUT.pth.tar --trust`, which keeps only "
            f"tensors and plain values.") from err
    except Exception as err:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") from err
    if isinstance(obj, dict) and 'state_dict' not in obj and all(torch.is_tensor(v) for v in obj.values()):
        obj = {'state_dict': obj}
    if not isinstance(obj, dict) or 'state_dict' not in obj:
        raise CheckpointError(f"{path}: expected a dict with a 'state_dict' (TSM's layout), got {type(obj).__name__}")
    return obj


def strip_module_prefix(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Remove DataParallel/DDP's ``module.`` prefix (TSM's checkpoints carry it)."""
    return {(k[len('module.'):] if k.startswith('module.') else k): v for k, v in state_dict.items()}


def load_model_weights(model: nn.Module, state_dict: Dict[str, torch.Tensor], path: str,
                       drop_classifier_if_mismatch: bool = False) -> None:
    """Load ``state_dict`` into ``model`` by name, strictly; errors name the file and the keys that differ.

    With ``drop_classifier_if_mismatch`` (``--tune_from``), a ``new_fc`` of another class count is skipped
    and stays freshly initialised.
    """
    state_dict = strip_module_prefix(state_dict)
    own = model.state_dict()
    old_fc = f"base_model.{getattr(getattr(model, 'layout', None), 'classifier', 'fc')}"
    if 'new_fc.weight' in own and 'new_fc.weight' not in state_dict and f'{old_fc}.weight' in state_dict:
        # TSM trained with --dropout 0 keeps its classifier as the backbone's (base_model.fc; no new_fc)
        for name in ('weight', 'bias'):
            if f'{old_fc}.{name}' in state_dict:
                state_dict[f'new_fc.{name}'] = state_dict.pop(f'{old_fc}.{name}')
    if drop_classifier_if_mismatch:
        for key in [k for k in state_dict if k.startswith('new_fc.')]:
            if key in own and own[key].shape != state_dict[key].shape:
                print(f"=> {path}: {key} has shape {tuple(state_dict[key].shape)}, the model "
                      f"{tuple(own[key].shape)}: keeping the new classifier")
                del state_dict[key]
                own.pop(key)
    # files from before PyTorch 0.4.1 lack BatchNorm's counter; BatchNorm's own loader fills it in
    missing = sorted(k for k in set(own) - set(state_dict) if not k.endswith('.num_batches_tracked'))
    unexpected = sorted(set(state_dict) - set(own))
    wrong = [f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
             for k in sorted(set(own) & set(state_dict)) if state_dict[k].shape != own[k].shape]
    if drop_classifier_if_mismatch:
        missing = [k for k in missing if not k.startswith('new_fc.')]
    if missing or unexpected or wrong:
        def show(keys):
            return ', '.join(keys[:6]) + (f' ... ({len(keys)} in all)' if len(keys) > 6 else '')
        parts = ([f"missing in the file: {show(missing)}"] if missing else []) + \
                ([f"not in the model: {show(unexpected)}"] if unexpected else []) + \
                ([f"shape mismatch: {show(wrong)}"] if wrong else [])
        raise CheckpointError(f"{path}: checkpoint does not match the model ({'; '.join(parts)}). "
                              f"Check --arch, --shift/--shift_place, --modality, --slowfast_alpha and the class count.")
    model.load_state_dict(state_dict, strict=not drop_classifier_if_mismatch)


def rng_state() -> Dict[str, Any]:
    """Random states of python, numpy and torch, in a form ``weights_only`` loading accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {'python': random.getstate(), 'torch': torch.get_rng_state(),
             'numpy': {'keys': torch.from_numpy(keys.astype(np.int64)), 'pos': int(pos),
                       'has_gauss': int(has_gauss), 'gauss': float(gauss)}}
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Optional[Dict[str, Any]]) -> None:
    """Restore what ``rng_state`` saved (missing parts are left alone)."""
    if not state:
        return
    if 'python' in state:
        v, internal, gauss = state['python']
        random.setstate((v, tuple(internal), gauss))
    if 'torch' in state:
        torch.set_rng_state(state['torch'].cpu())
    if 'numpy' in state:
        n = state['numpy']
        np.random.set_state(('MT19937', n['keys'].numpy().astype(np.uint32), n['pos'], n['has_gauss'], n['gauss']))
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']])
