"""Fixtures shared by several test modules."""
from pathlib import Path
from typing import Callable, Dict

import pytest
import torch


@pytest.fixture
def cached_weights(tmp_path, monkeypatch) -> Callable[[object, Dict[str, torch.Tensor]], None]:
    """``put(weights, state_dict)``: write ``state_dict`` where torchvision's cache keeps the file of ``weights``
    (a torchvision weights entry) in a temporary ``$TORCH_HOME``, so that loading it needs no network."""
    folder = tmp_path / 'hub' / 'checkpoints'
    folder.mkdir(parents=True)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))

    def put(weights, state_dict: Dict[str, torch.Tensor]) -> None:
        torch.save(state_dict, folder / weights.url.rsplit('/', 1)[-1])
    return put


@pytest.fixture(scope='session')
def tiny_move4mnist(tmp_path_factory) -> Callable[..., Path]:
    """``make(num_train, num_val, seed=0)``: a tiny generated Move4MNIST in a fresh temporary folder, its root."""
    def make(num_train: int, num_val: int, seed: int = 0) -> Path:
        from tools.make_move4mnist import main as make_move4mnist
        out = tmp_path_factory.mktemp('move4mnist')
        make_move4mnist(['--out', str(out), '--num_train', str(num_train), '--num_val', str(num_val),
                         '--seed', str(seed)])
        return out
    return make


@pytest.fixture(scope='session')
def pytorchvideo_state_dict() -> Callable[[str], list]:
    """pytorchvideo's checkpoint names and shapes, as facts (``tests/data/pytorchvideo_state_dicts.json.gz``):
    written once from pytorchvideo 0.1.5's own builders (``hub.x3d_xs ... x3d_l(pretrained=False)``; ``create_slowfast``
    with the 8x8 and 4x16 checkpoints' fusion settings), whose state dicts are the ``model_state`` of the Kinetics-400
    files X3D_XS/S/M/L.pyth and SLOWFAST_8x8/4x16_R50.pyth. ``facts(key)``: [(name, shape)] in order, for key
    'x3d_xs_s_m' (the three share them), 'x3d_l', 'slowfast_r50_alpha4' or 'slowfast_r50_alpha8'.
    tests/test_pytorchvideo_parity.py compares with pytorchvideo itself where it is installed."""
    import gzip
    import json
    with gzip.open(Path(__file__).resolve().parent / 'data' / 'pytorchvideo_state_dicts.json.gz', 'rt') as f:
        facts = json.load(f)
    return lambda key: [(name, tuple(shape)) for name, shape in facts[key].items()]
