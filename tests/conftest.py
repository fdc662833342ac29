"""Fixtures shared by several test modules."""
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
