"""What training minimises (pixel L1, the frequency L1, the inpainting hole weighting, the IPR L1
of stage 2, the S2-GAN terms of ``gan.py``) and how it is validated (the registry's evaluation
protocol through ``forward_padded``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..inference.forward import forward_padded
from ..nets.model import DiffIRS1, DiffIRS2
from ..tasks import get_task, image_tensor, tensor_image
from .data import validation_images
from .gan import Adversary, usm_sharp


def pixel_loss(
    task: str, out: torch.Tensor, gt: torch.Tensor, lq: torch.Tensor, hole_weight: float, fft_weight: float = 0.0
) -> torch.Tensor:
    if task != "inpaint":
        loss = F.l1_loss(out, gt)
        if fft_weight:
            spec = [torch.view_as_real(torch.fft.rfft2(t, norm="ortho")) for t in (out, gt)]
            loss = loss + fft_weight * F.l1_loss(*spec)
        return loss
    m = lq[:, 3:4]
    err = (out - gt).abs()
    hole = (err * m).sum() / (3 * m.sum()).clamp_min(1)
    known = (err * (1 - m)).sum() / (3 * (1 - m).sum()).clamp_min(1)
    return hole_weight * hole + 0.1 * known


class Objective(nn.Module):
    def __init__(
        self,
        model: DiffIRS1 | DiffIRS2,
        teacher: DiffIRS1 | None,
        phase: str,
        hole_weight: float,
        fft_weight: float,
        adversary: Adversary | None = None,
        usm_gt: bool = False,
    ) -> None:
        super().__init__()
        self.model, self.phase = model, phase
        self.hole_weight, self.fft_weight, self.usm_gt = hole_weight, fft_weight, usm_gt
        self.teacher = [teacher]  # not a submodule: frozen, never synchronised
        self.adversary = adversary  # S2-GAN (joint phase only); it keeps its own optimiser
        self.last_out: torch.Tensor | None = None  # the output, detached, for the discriminator's step

    def forward(self, lq: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        task = self.model.config.task
        if self.phase == "s1":
            out, _ = self.model(lq, gt)
            loss = pixel_loss(task, out, gt, lq, self.hole_weight, self.fft_weight)
            return loss, {"l_pix": float(loss.detach())}
        teacher = self.teacher[0]
        assert teacher is not None and isinstance(self.model, DiffIRS2)
        with torch.no_grad():
            ipr_s1 = teacher.cpen(lq, gt)
        if self.phase == "encoder":
            ipr, _ = self.model.training_prior(lq, ipr_s1)
            l_ipr = F.l1_loss(ipr, ipr_s1)
            return l_ipr, {"l_ipr": float(l_ipr.detach())}
        out, iprs = self.model(lq, ipr_s1)
        target = usm_sharp(gt) if self.usm_gt else gt
        l_pix = pixel_loss(task, out, target, lq, self.hole_weight, self.fft_weight)
        l_ipr = F.l1_loss(iprs[-1], ipr_s1)
        parts = {"l_pix": float(l_pix.detach()), "l_ipr": float(l_ipr.detach())}
        if self.adversary is None:
            return l_pix + l_ipr, parts
        self.last_out = out.detach()
        l_adv, adv_parts = self.adversary.generator_terms(out, gt)
        return l_pix + l_ipr + l_adv, {**parts, **adv_parts}


def validation_set(task_name: str, cache: Path, long_side: int = 256) -> list[tuple[np.ndarray, dict, np.ndarray]]:
    """Fixed (input, GT, extra) triples from the validation photos (the evaluation protocol, small
    so that it runs in seconds)."""
    task = get_task(task_name)
    images = validation_images(cache, long_side).values()
    return [(*task.eval_pair(gt, i), gt) for i, gt in enumerate(im.astype(np.float32) / 255 for im in images)]


def validate(model: DiffIRS1 | DiffIRS2, triples: list[tuple[np.ndarray, dict, np.ndarray]]) -> float:
    """Mean of the task's metric over the validation set (S2: seeded diffusion; S1: GT-informed IPR)."""
    model.eval()
    task = get_task(model.config.task)
    scores = []
    for i, (lq, extra, gt) in enumerate(triples):
        s1 = isinstance(model, DiffIRS1)
        y = forward_padded(model, image_tensor(lq), mode="s1" if s1 else "diffusion", gt=image_tensor(gt), seed=i)
        scores.append(task.score(tensor_image(y), gt, extra)[task.metric])
    model.train()
    return float(np.mean(scores))
