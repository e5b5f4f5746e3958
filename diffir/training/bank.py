"""A patch bank: degraded training pairs made ahead, stored as uint8 shards on disk, refreshed by a
background writer process, read by the training loop with free augmentations (flips, rotations).

Why: on 2 CPU cores every millisecond the loop spends degrading patches is a millisecond the network
does not train. The writer runs at low priority and only fills idle time; each pair is seen several
times under different flips/rotations before its shard is replaced.

Layout: ``<bank>/NNNNNN.npz`` with ``lq`` (N×h×w×C uint8) and ``gt`` (N×H×W×3 uint8), written
atomically; the writer keeps the newest ``keep`` shards.
"""

from __future__ import annotations

import io
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..files import write_atomic
from .pairs import Degradation, PairMaker


def shard_paths(bank: Path) -> list[Path]:
    return sorted(bank.glob("[0-9]*.npz"))


def write_shard(bank: Path, index: int, lq: np.ndarray, gt: np.ndarray) -> Path:
    buf = io.BytesIO()
    np.savez(buf, lq=lq, gt=gt)
    return write_atomic(bank / f"{index:06d}.npz", buf.getvalue())


def fill(
    bank: Path,
    maker: PairMaker,
    shard_size: int,
    keep: int,
    stop_after: int = 0,
    alive: Callable[[], bool] = lambda: True,
) -> int:
    """Write shards while ``alive()`` (or ``stop_after`` of them), deleting all but the newest ``keep``."""
    bank.mkdir(parents=True, exist_ok=True)
    existing = shard_paths(bank)
    index = int(existing[-1].stem) + 1 if existing else 0
    written = 0
    while (not stop_after or written < stop_after) and alive():
        lq, gt = maker.many(shard_size)
        old = shard_paths(bank)
        for path in old[: max(0, len(old) - (keep - 1))]:  # room for the new one: never more than ``keep``
            path.unlink(missing_ok=True)
        write_shard(bank, index, lq, gt)
        index += 1
        written += 1
    return written


def _writer(bank: str, pool: str, d: Degradation, scales: tuple[float, ...], seed: int, size: int, keep: int) -> None:
    torch.set_num_threads(1)
    parent = os.getppid()  # a daemon dies with a parent that exits, not with one that is killed: check
    maker = PairMaker(Path(pool), d, scales, seed)
    if not shard_paths(Path(bank)):
        fill(Path(bank), maker, size, keep, stop_after=1)  # the loop waits for this one: full priority
    os.nice(15)  # then idle time only: the training loop keeps priority
    fill(Path(bank), maker, size, keep, alive=lambda: os.getppid() == parent)


def start_writer(
    bank: Path, pool: Path, d: Degradation, scales: tuple[float, ...], seed: int, shard_size: int, keep: int
) -> mp.Process:
    """The background writer (a daemon process: it ends with the training process, and after its
    current shard when that process is killed)."""
    ctx = mp.get_context("spawn")
    p = ctx.Process(
        target=_writer, args=(str(bank), str(pool), d, scales, seed, shard_size, keep), daemon=True, name="bank"
    )
    p.start()
    return p


class BankSampler:
    """Batches from the bank's shards (re-read every ``reload_every`` batches to pick up new ones)."""

    def __init__(self, bank: Path, batch: int, seed: int, reload_every: int = 200, wait_s: float = 600) -> None:
        self.bank, self.batch, self.reload_every = bank, batch, reload_every
        self.rng = np.random.default_rng(seed)
        self.calls = 0
        self.loaded: list[str] = []
        deadline = time.time() + wait_s
        while not shard_paths(bank):
            if time.time() > deadline:
                raise TimeoutError(f"the patch bank {bank} stayed empty for {wait_s:.0f} s")
            time.sleep(1)
        self._load()

    def _load(self) -> None:
        paths = shard_paths(self.bank)
        lqs, gts, names = [], [], []
        for p in paths:
            try:
                with np.load(p) as z:
                    lqs.append(z["lq"])
                    gts.append(z["gt"])
                names.append(p.name)
            except (OSError, ValueError, KeyError):  # deleted or being replaced by the writer: next time
                continue
        if lqs:
            self.lq, self.gt, self.loaded = np.concatenate(lqs), np.concatenate(gts), names

    def __len__(self) -> int:
        return len(self.lq)

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch as float tensors in [0, 1], B×C×H×W, with a random flip/rotation per pair."""
        self.calls += 1
        if self.calls % self.reload_every == 0:
            self._load()
        idx = self.rng.integers(0, len(self.lq), self.batch)
        lq, gt = self.lq[idx], self.gt[idx]
        k, flip = int(self.rng.integers(4)), bool(self.rng.random() < 0.5)
        lq, gt = np.rot90(lq, k, axes=(1, 2)), np.rot90(gt, k, axes=(1, 2))
        if flip:
            lq, gt = lq[:, :, ::-1], gt[:, :, ::-1]
        return as_batch(lq), as_batch(gt)


def as_batch(x: np.ndarray) -> torch.Tensor:
    """N×H×W×C uint8 → N×C×H×W float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float().div_(255)
