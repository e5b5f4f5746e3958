"""CPEN, the compact IR prior extraction network: image in, one 256-d IPR vector out.

A small CNN (64/128/256 channels, fixed by the official code) ends in a *global* average pool, so
the IPR summarises the whole image. ``features`` and ``head`` are split so that the pipeline can
compute the pooled features tile by tile (exactly) on images too large to convolve at once.

What CPEN sees depends on the task and stage (LQ part first, then GT part, as in the official code):

======  =====================  ===============================
task    CPEN_S2 (LQ only)      CPEN_S1 (LQ + GT)
======  =====================  ===============================
deblur  unshuffle4(lq)          [unshuffle4(lq), unshuffle4(gt)]
sr ×4   lq                     [lq, unshuffle4(gt)]
sr ×2   unshuffle2(lq)         [unshuffle2(lq), unshuffle4(gt)]
sr ×1   unshuffle4(lq)         [unshuffle4(lq), unshuffle4(gt)]
inpaint unshuffle4(4-ch input) [unshuffle4(input), unshuffle4(gt)]
======  =====================  ===============================
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import IPR_DIM

CPEN_WIDTH = 64
GT_UNSHUFFLE = 4


class ResBlock(nn.Module):
    """conv-LeakyReLU-conv with an identity skip (EDSR style, no scaling)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(width, width, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class CPEN(nn.Module):
    """Convolutional body, global average pool, two-layer MLP.

    ``lq_unshuffle`` is the PixelUnshuffle factor applied to the LQ input; ``with_gt`` makes this the
    stage-1 CPEN that also sees the ground truth (unshuffled by 4).
    """

    def __init__(self, lq_channels: int, lq_unshuffle: int, n_encoder_res: int, with_gt: bool) -> None:
        super().__init__()
        self.lq_unshuffle = lq_unshuffle
        self.with_gt = with_gt
        in_channels = lq_channels * lq_unshuffle**2 + (3 * GT_UNSHUFFLE**2 if with_gt else 0)
        w = CPEN_WIDTH
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            *(ResBlock(w) for _ in range(n_encoder_res)),
            nn.Conv2d(w, 2 * w, 3, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
        )
        self.mlp = nn.Sequential(
            nn.Linear(IPR_DIM, IPR_DIM),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Linear(IPR_DIM, IPR_DIM),
            nn.LeakyReLU(0.1, inplace=True),
        )

    @property
    def receptive_radius(self) -> int:
        """Pixels (at CPEN input resolution) that a feature depends on in each direction."""
        return sum(1 for m in self.body.modules() if isinstance(m, nn.Conv2d))

    def pack(self, lq: torch.Tensor, gt: torch.Tensor | None = None) -> torch.Tensor:
        """Arrange the network input (and GT for stage 1) as CPEN's input tensor."""
        x = F.pixel_unshuffle(lq, self.lq_unshuffle) if self.lq_unshuffle > 1 else lq
        if self.with_gt:
            if gt is None:
                raise ValueError("the stage-1 CPEN needs the ground truth image")
            x = torch.cat([x, F.pixel_unshuffle(gt, GT_UNSHUFFLE)], dim=1)
        return x

    def features(self, packed: torch.Tensor) -> torch.Tensor:
        """Feature map before the global pool (B×256×h×w)."""
        return self.body(packed)

    def head(self, pooled: torch.Tensor) -> torch.Tensor:
        """MLP on the pooled B×256 features: the IPR."""
        return self.mlp(pooled)

    def forward(self, lq: torch.Tensor, gt: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(self.pack(lq, gt)).mean(dim=(2, 3)))
