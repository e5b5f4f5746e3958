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

from .pointwise import pointwise

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

    def normalized(self, x: torch.Tensor) -> torch.Tensor:
        """The normalisation without the affine part (``fold`` moves that into the next 1×1 conv)."""
        x_nhwc = x.permute(0, 2, 3, 1)
        if self.bias is not None:
            y = F.layer_norm(x_nhwc, self.weight.shape, None, None, 1e-5)
        else:
            _, _, rstd = torch.native_layer_norm(x_nhwc, self.weight.shape, None, None, 1e-5)
            y = x_nhwc * rstd
        return y.permute(0, 3, 1, 2)

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


def fold(
    conv: nn.Conv2d, norm: LayerNorm2d, ipr_proj: nn.Linear, ipr: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of ``conv`` applied after LayerNorm's affine and the IPR modulation, for one image.

    conv(k1 · (x̂ · w + b) + k2) = (W · diag(k1 · w)) x̂ + W (k1 · b + k2) + bias: at inference the
    IPR is fixed per image, so both per-pixel passes disappear into a 1×1 conv that runs anyway.
    """
    scale, shift = ipr_proj(ipr)[0].chunk(2)
    weight = conv.weight[:, :, 0, 0]
    bias = shift if norm.bias is None else torch.addcmul(shift, scale, norm.bias)
    out_bias = weight @ bias + (conv.bias if conv.bias is not None else 0)
    return (weight * (scale * norm.weight)).view_as(conv.weight), out_bias


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
        return self.attend(self.qkv_dwconv(self.qkv(modulate(x, self.ipr_proj, ipr))))

    def fused(self, x_hat: torch.Tensor, norm: LayerNorm2d, ipr: torch.Tensor) -> torch.Tensor:
        """Inference for one image: ``forward(norm(x_hat-before-affine), ipr)`` with the affine folded."""
        weight, bias = fold(self.qkv, norm, self.ipr_proj, ipr)
        return self.attend(self.qkv_dwconv(pointwise(x_hat, weight, bias)))

    def attend(self, qkv: torch.Tensor) -> torch.Tensor:
        b, c3, h, w = qkv.shape
        c = c3 // 3
        # Channels-last view B × (HW) × 3C (no copy). L2-normalising q and k along HW is done on the
        # small C×C Gram matrix instead of on q and k themselves: same maths, two fewer passes.
        flat = qkv.permute(0, 2, 3, 1).reshape(b, h * w, 3 * c)
        inv_norm = flat[:, :, : 2 * c].square().sum(dim=1).clamp_min(1e-24).rsqrt()  # 1/max(|x|, 1e-12)
        inv_q, inv_k = inv_norm.view(b, 2, self.heads, c // self.heads).unbind(1)
        q, k, v = flat.view(b, h * w, 3, self.heads, c // self.heads).unbind(2)
        gram = torch.einsum("bnhc,bnhd->bhcd", q, k)  # heads × (C/h × C/h)
        attn = gram * inv_q[..., :, None] * inv_k[..., None, :] * self.temperature
        out = torch.einsum("bhcd,bnhd->bnhc", attn.softmax(dim=-1), v)
        out = out.reshape(b, h, w, c).permute(0, 3, 1, 2)
        return pointwise(out, self.project_out.weight, self.project_out.bias)  # = self.project_out(out)


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

    def fused(self, x_hat: torch.Tensor, norm: LayerNorm2d, ipr: torch.Tensor) -> torch.Tensor:
        """Inference for one image, affine folded; each half made on its own so that GELU and the
        gate run in place on dense tensors."""
        weight, bias = fold(self.project_in, norm, self.ipr_proj, ipr)
        dw_w, dw_b = self.dwconv.weight, self.dwconv.bias
        hidden = dw_w.shape[0] // 2
        u = [
            F.conv2d(pointwise(x_hat, wi, bi), dwi, dbi, padding=1, groups=hidden)
            for wi, bi, dwi, dbi in zip(weight.split(hidden), bias.split(hidden), dw_w.split(hidden),
                                        dw_b.split(hidden) if dw_b is not None else (None, None))
        ]  # fmt: skip
        return pointwise(F.gelu(u[0]).mul_(u[1]), self.project_out.weight, self.project_out.bias)


class TransformerBlock(nn.Module):
    """Dynamic transformer block: x + DMTA(LN(x), ipr), then x + DGFN(LN(x), ipr)."""

    def __init__(self, dim: int, heads: int, ffn_expansion_factor: float, bias: bool, norm_type: NormType) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(dim, norm_type)
        self.dmta = DMTA(dim, heads, bias)
        self.norm2 = LayerNorm2d(dim, norm_type)
        self.dgfn = DGFN(dim, ffn_expansion_factor, bias)

    def forward(self, x: torch.Tensor, ipr: torch.Tensor) -> torch.Tensor:
        if ipr.shape[0] == 1 and not torch.is_grad_enabled():  # inference: affine folded into the convs
            x = x + self.dmta.fused(self.norm1.normalized(x), self.norm1, ipr)
            return x.add_(self.dgfn.fused(self.norm2.normalized(x), self.norm2, ipr))
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
