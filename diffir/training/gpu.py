"""Data for GPU runs: DataLoader worker processes make degraded pairs on the CPU cores (the lent GPU
machine has 16) while the GPU trains; batches arrive pinned, as uint8, and are converted there."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from .bank import as_batch
from .pairs import Degradation, PairMaker


class PairStream(IterableDataset):
    """An endless stream of (lq, gt) uint8 pairs; each worker seeds its own generator."""

    def __init__(self, pool: Path, d: Degradation, scales: tuple[float, ...], seed: int) -> None:
        self.pool, self.d, self.scales, self.seed = pool, d, scales, seed

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        info = get_worker_info()
        maker = PairMaker(self.pool, self.d, self.scales, self.seed * 100 + (info.id if info else 0))
        while True:
            yield maker()


def loader_batches(
    pool: Path, d: Degradation, scales: tuple[float, ...], seed: int, batch: int, workers: int
) -> Callable[[], tuple[torch.Tensor, torch.Tensor]]:
    loader = DataLoader(
        PairStream(pool, d, scales, seed),
        batch_size=batch,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        prefetch_factor=4,
        persistent_workers=True,
    )
    it = iter(loader)

    def next_batch() -> tuple[torch.Tensor, torch.Tensor]:
        lq, gt = next(it)
        return as_batch(lq.numpy()), as_batch(gt.numpy())

    return next_batch
