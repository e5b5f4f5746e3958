"""Building blocks of DIRformer: LayerNorms, DMTA, DGFN and the dynamic transformer block.

Every block that sees image features is modulated by the IPR (the 256-d image prior): a bias-free
Linear maps the IPR to a per-channel scale and shift that is applied to the normalised features
(``F' = scale * F + shift``), exactly as in the official DiffIR code.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

IPR_DIM = 256
"""Width of the IPR vector; hard-coded in the official code (CPEN is 64/128/256 channels wide)."""

NormType = Literal["WithBias", "BiasFree"]


class LayerNorm2d(nn.Module):
    """Per-pixel LayerNorm over channels of a B×C×H×W tensor (biased variance, eps 1e-5 inside the sqrt).

    ``BiasFree`` is the official Restormer variant: the variance is taken around the mean but ``x`` is
    *not* centred, so it is not an RMSNorm. Works on the channels-last view (one fused kernel) and
    returns a channels-last tensor.
    """

    def __init__(self, dim: int, norm_type: NormType) -> None:
        super().__init__()
        if norm_type not in ("WithBias", "BiasFree"):
            raise ValueError(f"norm_type must be 'WithBias' or 'BiasFree', got {norm_type!r}")
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if norm_type == "WithBias" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_nhwc = x.permute(0, 2, 3, 1)
        if self.bias is not None:
            y = F.layer_norm(x_nhwc, self.weight.shape, self.weight, self.bias, 1e-5)
        else:
            _, _, rstd = torch.native_layer_norm(x_nhwc, self.weight.shape, None, None, 1e-5)
            y = x_nhwc * rstd * self.weight
        return y.permute(0, 3, 1, 2)


def modulate(x: torch.Tensor, ipr_proj: nn.Linear, ipr: torch.Tensor) -> torch.Tensor:
    """Apply the IPR's per-channel scale and shift: first C outputs scale, last C shift."""
    scale, shift = ipr_proj(ipr)[:, :, None, None].chunk(2, dim=1)
    return torch.addcmul(shift, x, scale)


class DMTA(nn.Module):
    """Dynamic multi-head transposed attention: channel-to-channel attention per head, IPR-modulated."""

    def __init__(self, dim: int, heads: int, bias: bool) -> None:
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.ipr_proj = nn.Linear(IPR_DIM, 2 * dim, bias=False)
        self.qkv = nn.Conv2d(dim, 3 * dim, kernel_size=1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(3 * dim, 3 * dim, 3, padding=1, groups=3 * dim, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor, ipr: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv_dwconv(self.qkv(modulate(x, self.ipr_proj, ipr)))
        # Channels-last view B × (HW) × 3C (no copy). L2-normalising q and k along HW is done on the
        # small C×C Gram matrix instead of on q and k themselves: same maths, two fewer passes.
        flat = qkv.permute(0, 2, 3, 1).reshape(b, h * w, 3 * c)
        inv_norm = flat[:, :, : 2 * c].square().sum(dim=1).clamp_min(1e-24).rsqrt()  # 1/max(|x|, 1e-12)
        inv_q, inv_k = inv_norm.view(b, 2, self.heads, c // self.heads).unbind(1)
        q, k, v = flat.view(b, h * w, 3, self.heads, c // self.heads).unbind(2)
        gram = torch.einsum("bnhc,bnhd->bhcd", q, k)  # heads × (C/h × C/h)
        attn = gram * inv_q[..., :, None] * inv_k[..., None, :] * self.temperature
        out = torch.einsum("bhcd,bnhd->bnhc", attn.softmax(dim=-1), v)
        return self.project_out(out.reshape(b, h, w, c).permute(0, 3, 1, 2))


class DGFN(nn.Module):
    """Dynamic gated feed-forward network: GELU(u1) * u2 after a depthwise 3×3, IPR-modulated."""

    def __init__(self, dim: int, ffn_expansion_factor: float, bias: bool) -> None:
        super().__init__()
        hidden = int(dim * ffn_expansion_factor)  # truncation, as the official code
        self.project_in = nn.Conv2d(dim, 2 * hidden, kernel_size=1, bias=bias)
        self.dwconv = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, kernel_size=1, bias=bias)
        self.ipr_proj = nn.Linear(IPR_DIM, 2 * dim, bias=False)  # last, as in the official key order

    def forward(self, x: torch.Tensor, ipr: torch.Tensor) -> torch.Tensor:
        u1, u2 = self.dwconv(self.project_in(modulate(x, self.ipr_proj, ipr))).chunk(2, dim=1)
        return self.project_out(F.gelu(u1) * u2)


class TransformerBlock(nn.Module):
    """Dynamic transformer block: x + DMTA(LN(x), ipr), then x + DGFN(LN(x), ipr)."""

    def __init__(self, dim: int, heads: int, ffn_expansion_factor: float, bias: bool, norm_type: NormType) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(dim, norm_type)
        self.dmta = DMTA(dim, heads, bias)
        self.norm2 = LayerNorm2d(dim, norm_type)
        self.dgfn = DGFN(dim, ffn_expansion_factor, bias)

    def forward(self, x: torch.Tensor, ipr: torch.Tensor) -> torch.Tensor:
        x = x + self.dmta(self.norm1(x), ipr)
        return x + self.dgfn(self.norm2(x), ipr)


class TransformerStage(nn.ModuleList):
    """A run of transformer blocks that all see the same IPR."""

    def __init__(
        self, n: int, dim: int, heads: int, ffn_expansion_factor: float, bias: bool, norm_type: NormType
    ) -> None:
        super().__init__(TransformerBlock(dim, heads, ffn_expansion_factor, bias, norm_type) for _ in range(n))

    def forward(self, x: torch.Tensor, ipr: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for block in self:
            x = block(x, ipr)
        return x


class Downsample(nn.Sequential):
    """3×3 conv to C/2, then PixelUnshuffle(2): half the resolution, twice the channels."""

    def __init__(self, dim: int) -> None:
        super().__init__(nn.Conv2d(dim, dim // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))


class Upsample(nn.Sequential):
    """3×3 conv to 2C, then PixelShuffle(2): twice the resolution, half the channels."""

    def __init__(self, dim: int) -> None:
        super().__init__(nn.Conv2d(dim, dim * 2, 3, padding=1, bias=False), nn.PixelShuffle(2))
