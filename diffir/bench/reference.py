"""The official DiffIR stage-2 network written the way the official code computes it, as the
baseline of the speed benchmark (``python -m diffir.bench --official``).

Written from the module descriptions of the fact sheet (``DIFFIR_FACTS.md`` §4) with the official
code's sequence of tensor operations, Restormer style: LayerNorm on a ``b (h w) c`` copy of the
features, the IPR modulation as its own pass, q and k L2-normalised explicitly, ``q @ kᵀ`` per head,
GELU and gate as separate passes, and no channels-last layout. Parameter names are the official
ones, so a model of ours loads into it through ``checkpoints.official.to_official``; the benchmark
checks that both give the same output before it times them.

Not used by the app: ``diffir.nets`` is the implementation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nets.model import DiffIRConfig


def to_3d(x: torch.Tensor) -> torch.Tensor:
    """``rearrange(x, 'b c h w -> b (h w) c')``."""
    b, c, h, w = x.shape
    return x.permute(0, 2, 3, 1).reshape(b, h * w, c)


def to_4d(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``rearrange(x, 'b (h w) c -> b c h w')``."""
    b, _, c = x.shape
    return x.reshape(b, h, w, c).permute(0, 3, 1, 2)


class LayerNormBody(nn.Module):
    def __init__(self, dim: int, with_bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if with_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sigma = x.var(-1, keepdim=True, unbiased=False)
        if self.bias is None:
            return x / torch.sqrt(sigma + 1e-5) * self.weight
        mu = x.mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(sigma + 1e-5) * self.weight + self.bias


class LayerNorm(nn.Module):
    def __init__(self, dim: int, norm_type: str) -> None:
        super().__init__()
        self.body = LayerNormBody(dim, norm_type == "WithBias")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return to_4d(self.body(to_3d(x)), h, w)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, bias: bool) -> None:
        super().__init__()
        self.num_heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.kernel = nn.Sequential(nn.Linear(256, dim * 2, bias=False))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor, ipr: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        k1, k2 = self.kernel(ipr).view(-1, c * 2, 1, 1).chunk(2, dim=1)
        x = x * k1 + k2
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        q, k, v = (t.reshape(b, self.num_heads, c // self.num_heads, h * w) for t in (q, k, v))
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1)) * self.temperature
        out = attn.softmax(dim=-1) @ v
        return self.project_out(out.reshape(b, c, h, w))


class FeedForward(nn.Module):
    def __init__(self, dim: int, ffn_expansion_factor: float, bias: bool) -> None:
        super().__init__()
        hidden = int(dim * ffn_expansion_factor)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)
        self.kernel = nn.Sequential(nn.Linear(256, dim * 2, bias=False))

    def forward(self, x: torch.Tensor, ipr: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        k1, k2 = self.kernel(ipr).view(-1, c * 2, 1, 1).chunk(2, dim=1)
        x = self.project_in(x * k1 + k2)
        x1, x2 = self.dwconv(x).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, ffn: float, bias: bool, norm_type: str) -> None:
        super().__init__()
        self.norm1 = LayerNorm(dim, norm_type)
        self.attn = Attention(dim, heads, bias)
        self.norm2 = LayerNorm(dim, norm_type)
        self.ffn = FeedForward(dim, ffn, bias)

    def forward(self, x: torch.Tensor, ipr: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), ipr)
        return x + self.ffn(self.norm2(x), ipr)


class Stage(nn.ModuleList):
    def forward(self, x: torch.Tensor, ipr: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for block in self:
            x = block(x, ipr)
        return x


class Resample(nn.Module):
    def __init__(self, dim: int, down: bool) -> None:
        super().__init__()
        out = dim // 2 if down else dim * 2
        self.body = nn.Sequential(nn.Conv2d(dim, out, 3, padding=1, bias=False),
                                  nn.PixelUnshuffle(2) if down else nn.PixelShuffle(2))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class PatchEmbed(nn.Module):
    def __init__(self, cin: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(cin, dim, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class G(nn.Module):
    """DIRformer as the official code lays it out (``G.*`` keys)."""

    def __init__(self, cfg: DiffIRConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.unshuffle = {4: 1, 2: 2, 1: 4}[cfg.scale] if cfg.task == "sr" else 1
        c = cfg.dim

        def stage(n: int, d: int, h: int) -> Stage:
            return Stage(TransformerBlock(d, h, cfg.ffn_expansion_factor, cfg.bias, cfg.norm_type) for _ in range(n))

        nb, hd = cfg.num_blocks, cfg.heads
        self.patch_embed = PatchEmbed(4 if cfg.task == "inpaint" else 3 * self.unshuffle**2, c)
        self.encoder_level1 = stage(nb[0], c, hd[0])
        self.down1_2 = Resample(c, True)
        self.encoder_level2 = stage(nb[1], 2 * c, hd[1])
        self.down2_3 = Resample(2 * c, True)
        self.encoder_level3 = stage(nb[2], 4 * c, hd[2])
        self.down3_4 = Resample(4 * c, True)
        self.latent = stage(nb[3], 8 * c, hd[3])
        self.up4_3 = Resample(8 * c, False)
        self.reduce_chan_level3 = nn.Conv2d(8 * c, 4 * c, 1, bias=cfg.bias)
        self.decoder_level3 = stage(nb[2], 4 * c, hd[2])
        self.up3_2 = Resample(4 * c, False)
        self.reduce_chan_level2 = nn.Conv2d(4 * c, 2 * c, 1, bias=cfg.bias)
        self.decoder_level2 = stage(nb[1], 2 * c, hd[1])
        self.up2_1 = Resample(2 * c, False)
        self.decoder_level1 = stage(nb[0], 2 * c, hd[0])
        self.refinement = stage(cfg.num_refinement_blocks, 2 * c, hd[0])
        if cfg.task == "sr":
            self.tail = nn.Sequential(
                nn.Sequential(nn.Conv2d(2 * c, 8 * c, 3, padding=1), nn.PixelShuffle(2),
                              nn.Conv2d(2 * c, 8 * c, 3, padding=1), nn.PixelShuffle(2)),
                nn.Conv2d(2 * c, 3, 3, padding=1),
            )  # fmt: skip
        else:
            self.output = nn.Conv2d(2 * c, 3, 3, padding=1, bias=cfg.bias)

    def forward(self, inp: torch.Tensor, ipr: torch.Tensor) -> torch.Tensor:
        x = F.pixel_unshuffle(inp, self.unshuffle) if self.unshuffle > 1 else inp
        enc1 = self.encoder_level1(self.patch_embed(x), ipr)
        enc2 = self.encoder_level2(self.down1_2(enc1), ipr)
        enc3 = self.encoder_level3(self.down2_3(enc2), ipr)
        latent = self.latent(self.down3_4(enc3), ipr)
        dec3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(latent), enc3], 1)), ipr)
        dec2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(dec3), enc2], 1)), ipr)
        dec1 = self.refinement(self.decoder_level1(torch.cat([self.up2_1(dec2), enc1], 1), ipr), ipr)
        if self.cfg.task == "sr":
            return self.tail(dec1) + F.interpolate(inp, scale_factor=self.cfg.scale, mode="nearest")
        out = self.output(dec1)
        return out + inp if self.cfg.task == "deblur" else out


class Condition(nn.Module):
    """CPEN_S2 (``condition.*`` keys)."""

    def __init__(self, cfg: DiffIRConfig) -> None:
        super().__init__()
        self.unshuffle = {4: 1, 2: 2, 1: 4}[cfg.scale] if cfg.task == "sr" else 4
        cin = (4 if cfg.task == "inpaint" else 3) * self.unshuffle**2
        layers: list[nn.Module] = [nn.Conv2d(cin, 64, 3, padding=1), nn.LeakyReLU(0.1, True)]
        layers += [ResBlock() for _ in range(cfg.n_encoder_res)]
        for a, b in ((64, 128), (128, 128), (128, 256)):
            layers += [nn.Conv2d(a, b, 3, padding=1), nn.LeakyReLU(0.1, True)]
        self.E = nn.Sequential(*layers)
        self.mlp = nn.Sequential(nn.Linear(256, 256), nn.LeakyReLU(0.1, True),
                                 nn.Linear(256, 256), nn.LeakyReLU(0.1, True))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pixel_unshuffle(x, self.unshuffle) if self.unshuffle > 1 else x
        return self.mlp(self.E(x).mean(dim=(2, 3)))


class ResBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1), nn.LeakyReLU(0.1, True),
                                  nn.Conv2d(64, 64, 3, padding=1))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class ResMLP(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.resmlp = nn.Sequential(nn.Linear(cin, 256), nn.LeakyReLU(0.1, True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resmlp(x)


class Denoise(nn.Module):
    """The IPR denoiser (``denoise.resmlp.*`` keys: Linear 513→256 + LReLU at 0/1, blocks from 2)."""

    def __init__(self, cfg: DiffIRConfig) -> None:
        super().__init__()
        self.max_period = cfg.timesteps * 10
        self.resmlp = nn.Sequential(nn.Linear(513, 256), nn.LeakyReLU(0.1, True),
                                    *(ResMLP(256) for _ in range(cfg.n_denoise_res)))  # fmt: skip

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.resmlp(torch.cat([c, t.float().view(-1, 1) / self.max_period, x], dim=1))


class ReferenceDiffIRS2(nn.Module):
    """Stage 2 in eval mode: x_T ~ N(0, I) first, CPEN_S2, the DDPM posterior-mean loop, DIRformer."""

    def __init__(self, cfg: DiffIRConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.G = G(cfg)
        self.condition = Condition(cfg)
        self.denoise = Denoise(cfg)
        from ..nets.diffusion import make_betas, make_schedule

        sched = make_schedule(make_betas(cfg.linear_start, cfg.linear_end, cfg.timesteps))
        self.steps = list(zip(sched.timesteps, sched.coef1, sched.coef2))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        b = img.shape[0]
        x = torch.randn(b, 256, device=img.device)
        c = self.condition(img)
        for t, c1, c2 in self.steps:
            x0 = self.denoise(x, torch.full((b,), t, dtype=torch.long), c)
            torch.randn_like(x)  # drawn and discarded by the official p_sample (posterior mean only)
            x = c1 * x0 + c2 * x
        return self.G(img, x)


def reference_from(model: nn.Module) -> ReferenceDiffIRS2:
    """The reference network with ``model``'s weights (official names; strict on every used key)."""
    from ..checkpoints.official import to_official

    ref = ReferenceDiffIRS2(model.config).eval()
    state = {k: v for k, v in to_official(model).items() if k.split(".")[0] in ("G", "condition", "denoise")}
    ref.load_state_dict(state, strict=True)
    return ref
