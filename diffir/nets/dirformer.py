"""DIRformer: the Restormer-style 4-level U-Net whose every block is modulated by the IPR.

Heads, as in the official code:

* deblur:  3×3 conv 2C→3, plus the input image (global residual);
* sr:      ×4 upsampler (conv 2C→8C + PixelShuffle(2), twice), 3×3 conv 2C→3, plus the nearest-
           upsampled input. ×2 and ×1 models first unshuffle the LQ by 2 or 4 so that the fixed ×4
           tail lands on their scale;
* inpaint: 3×3 conv 2C→3 on the 4-channel (masked RGB, mask) input, no residual. This project's
           inpainting weights first fill the hole by pull-push (``prefill``: the network refines a
           smooth fill instead of inventing colour from zeros); the official ones see zeros.

Decoder level 1 and the refinement stage run at 2C channels (no 1×1 reduction after ``up2_1``).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Downsample, NormType, TransformerStage, Upsample

Task = Literal["deblur", "sr", "inpaint"]

SR_UNSHUFFLE = {4: 1, 2: 2, 1: 4}
"""PixelUnshuffle factor applied to the LQ before DIRformer (and CPEN_S2) for each SR scale."""


def input_multiple(task: Task, scale: int) -> int:
    """The network input's height and width must be a multiple of this (three ×2 downsamplings)."""
    return 8 * SR_UNSHUFFLE[scale] if task == "sr" else 8


def pull_push_fill(rgb: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """``rgb`` with its hole (B×1×H×W, 1 = fill) filled from the known pixels only: the known colour
    averaged down a ×2 pyramid ("pull"), then brought back up bilinearly into the cells with nothing
    known ("push"); a smooth, harmonic-like fill in a dozen small passes, on any device."""
    known = (hole < 0.5).to(torch.float32)
    x, w = rgb.to(torch.float32) * known, known
    pyramid = []
    while min(x.shape[-2:]) > 1:
        pyramid.append((x, w))
        x, w = F.avg_pool2d(x, 2, ceil_mode=True), F.avg_pool2d(w, 2, ceil_mode=True)
    fill = x / w.clamp_min(1e-6)
    for x, w in reversed(pyramid):  # x is already the known share of each cell's mean (w · mean)
        fill = x + (1 - w) * F.interpolate(fill, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return torch.where(known > 0, rgb, fill.to(rgb.dtype))


class DIRformer(nn.Module):
    def __init__(
        self,
        task: Task,
        scale: int = 1,
        dim: int = 48,
        num_blocks: tuple[int, int, int, int] = (4, 6, 6, 8),
        num_refinement_blocks: int = 4,
        heads: tuple[int, int, int, int] = (1, 2, 4, 8),
        ffn_expansion_factor: float = 2.66,
        bias: bool = False,
        norm_type: NormType = "WithBias",
        prefill: bool = False,
    ) -> None:
        super().__init__()
        self.task = task
        self.prefill = prefill
        self.scale = scale
        self.unshuffle = SR_UNSHUFFLE[scale] if task == "sr" else 1
        in_channels = 4 if task == "inpaint" else 3 * self.unshuffle**2

        def stage(n: int, level_dim: int, h: int) -> TransformerStage:
            return TransformerStage(n, level_dim, h, ffn_expansion_factor, bias, norm_type)

        c = dim
        self.patch_embed = nn.Conv2d(in_channels, c, 3, padding=1, bias=False)
        self.encoder_level1 = stage(num_blocks[0], c, heads[0])
        self.down1_2 = Downsample(c)
        self.encoder_level2 = stage(num_blocks[1], 2 * c, heads[1])
        self.down2_3 = Downsample(2 * c)
        self.encoder_level3 = stage(num_blocks[2], 4 * c, heads[2])
        self.down3_4 = Downsample(4 * c)
        self.latent = stage(num_blocks[3], 8 * c, heads[3])
        self.up4_3 = Upsample(8 * c)
        self.reduce_chan_level3 = nn.Conv2d(8 * c, 4 * c, 1, bias=bias)
        self.decoder_level3 = stage(num_blocks[2], 4 * c, heads[2])
        self.up3_2 = Upsample(4 * c)
        self.reduce_chan_level2 = nn.Conv2d(4 * c, 2 * c, 1, bias=bias)
        self.decoder_level2 = stage(num_blocks[1], 2 * c, heads[1])
        self.up2_1 = Upsample(2 * c)
        self.decoder_level1 = stage(num_blocks[0], 2 * c, heads[0])
        self.refinement = stage(num_refinement_blocks, 2 * c, heads[0])
        if task == "sr":
            self.tail = nn.Sequential(
                nn.Sequential(
                    nn.Conv2d(2 * c, 8 * c, 3, padding=1),
                    nn.PixelShuffle(2),
                    nn.Conv2d(2 * c, 8 * c, 3, padding=1),
                    nn.PixelShuffle(2),
                ),
                nn.Conv2d(2 * c, 3, 3, padding=1),
            )
        else:
            self.output = nn.Conv2d(2 * c, 3, 3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor, ipr: torch.Tensor) -> torch.Tensor:
        """Restore ``x`` (padded to ``input_multiple``) under the prior ``ipr`` (B×256)."""
        if self.prefill:  # what lies under the hole never reaches the network
            x = torch.cat([pull_push_fill(x[:, :3], x[:, 3:4]), x[:, 3:4]], dim=1)
        feat = F.pixel_unshuffle(x, self.unshuffle) if self.unshuffle > 1 else x
        # Channels-last throughout: depthwise and 1×1 convolutions run 2-2.5× faster on CPU.
        feat = feat.contiguous(memory_format=torch.channels_last)
        enc1 = self.encoder_level1(self.patch_embed(feat), ipr)
        enc2 = self.encoder_level2(self.down1_2(enc1), ipr)
        enc3 = self.encoder_level3(self.down2_3(enc2), ipr)
        latent = self.latent(self.down3_4(enc3), ipr)
        dec3 = self.reduce_chan_level3(torch.cat([self.up4_3(latent), enc3], dim=1))
        dec3 = self.decoder_level3(dec3, ipr)
        del latent, enc3
        dec2 = self.reduce_chan_level2(torch.cat([self.up3_2(dec3), enc2], dim=1))
        dec2 = self.decoder_level2(dec2, ipr)
        del dec3, enc2
        dec1 = self.decoder_level1(torch.cat([self.up2_1(dec2), enc1], dim=1), ipr)
        del dec2, enc1
        dec1 = self.refinement(dec1, ipr)
        if self.task == "sr":
            return self.tail(dec1) + F.interpolate(x, scale_factor=self.scale, mode="nearest")
        out = self.output(dec1)
        return out + x if self.task == "deblur" else out
