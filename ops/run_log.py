"""A training run's log: rank 0's text log (``log.csv``, as TSM's) and its TensorBoard scalars."""
import os
from typing import Dict, Optional

from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm


class RunLog:
    """Rank 0's text log (``log.csv`` as TSM) and TensorBoard scalars; a silent stub on other ranks."""

    def __init__(self, folder: Optional[str]) -> None:
        self.folder = folder
        self.writer = SummaryWriter(log_dir=folder) if folder else None
        self.file = open(os.path.join(folder, 'log.csv'), 'a') if folder else None

    def line(self, text: str) -> None:
        if self.file:
            tqdm.write(text)
            self.file.write(text + '\n')
            self.file.flush()

    def scalars(self, values: Dict[str, float], step: int) -> None:
        if self.writer:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer:
            self.writer.close()
        if self.file:
            self.file.close()
