"""The S2-GAN stage (the "sharp" super-resolution model): a U-Net discriminator and the terms it adds.

The official DiffIR S2-GAN fine-tunes a finished stage-2 model with L1 + VGG19 perceptual + GAN +
IPR L1. VGG weights cannot be had here, so the perceptual term is replaced by **feature matching
on the discriminator** (pix2pixHD; LaMa, which DiffIR's own inpainting recipe uses, weights it
×100): L1 between the discriminator's features of the output and of the GT. It needs no outside
weights, it compares textures at every scale the discriminator sees, and it keeps the generator's
gradient useful while the discriminator's verdict saturates. The frozen SR networks available
offline (DAT-light, Real-ESRGAN) are SR generators, not feature extractors, and one is a peer we
are measured against. Optionally (Real-ESRGAN V2, DiffIR's ``_V2`` configs) the pixel L1 is
taken against an unsharp-masked GT, which moves the output towards crisp edges without inventing.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class UNetDiscriminatorSN(nn.Module):
    """Real-ESRGAN's U-Net discriminator with spectral normalisation: a real/fake logit per pixel
    (so it judges local texture, not the whole patch), narrowed to ``feat`` channels for CPUs."""

    def __init__(self, in_ch: int = 3, feat: int = 32) -> None:
        super().__init__()

        def sn(i: int, o: int, k: int = 3, s: int = 1) -> nn.Module:
            return spectral_norm(nn.Conv2d(i, o, k, s, (k - 1) // 2 if k == 3 else 1, bias=False))

        self.conv0 = nn.Conv2d(in_ch, feat, 3, 1, 1)
        self.down = nn.ModuleList(
            [sn(feat, 2 * feat, 4, 2), sn(2 * feat, 4 * feat, 4, 2), sn(4 * feat, 8 * feat, 4, 2)]
        )
        self.up = nn.ModuleList([sn(8 * feat, 4 * feat), sn(4 * feat, 2 * feat), sn(2 * feat, feat)])
        self.head = nn.Sequential(sn(feat, feat), nn.LeakyReLU(0.2), sn(feat, feat), nn.LeakyReLU(0.2))
        self.out = nn.Conv2d(feat, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(logits B×1×H×W, the features after each down and up level)."""
        skips = [F.leaky_relu(self.conv0(x), 0.2)]
        for conv in self.down:
            skips.append(F.leaky_relu(conv(skips[-1]), 0.2))
        h, feats = skips.pop(), skips[1:]
        feats = [*feats, h]
        for conv in self.up:
            h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
            h = F.leaky_relu(conv(h), 0.2) + skips.pop()
            feats.append(h)
        return self.out(self.head(h)), feats


def gaussian_kernel(size: int = 51) -> torch.Tensor:
    """OpenCV's ``getGaussianKernel(size, 0)`` (σ from the size), as Real-ESRGAN's USM uses."""
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def _blur(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    c, r = x.shape[1], k.numel() // 2
    kk = k.to(x)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), kk.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), kk.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def usm_sharp(img: torch.Tensor, weight: float = 0.5, threshold: float = 10, size: int = 51) -> torch.Tensor:
    """Real-ESRGAN's ``USMSharp``: unsharp masking where the detail is above ``threshold`` (of 255),
    blended with a soft mask so flat regions and noise are left alone."""
    k = gaussian_kernel(size)
    residual = img - _blur(img, k)
    mask = (residual.abs() * 255 > threshold).float()
    soft = _blur(mask, k)
    sharp = (img + weight * residual).clamp(0, 1)
    return soft * sharp + (1 - soft) * img


class Adversary:
    """The discriminator, its optimiser and the generator's terms (GAN + feature matching).

    ``generator_terms`` is called inside the objective (its graph reaches the generator); ``update``
    trains the discriminator on the same batch afterwards, on the detached output."""

    def __init__(self, gan_weight: float, feature_weight: float, lr: float, feat: int, device: torch.device) -> None:
        self.gan_weight, self.feature_weight = gan_weight, feature_weight
        self.disc = UNetDiscriminatorSN(3, feat).to(device)
        self.opt = torch.optim.Adam(self.disc.parameters(), lr=lr, betas=(0.9, 0.99))

    def generator_terms(self, out: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        self.disc.requires_grad_(False)
        logits, fake = self.disc(out)
        with torch.no_grad():
            real = self.disc(gt)[1]
        self.disc.requires_grad_(True)
        l_gan = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        l_fm = sum(F.l1_loss(f, r) for f, r in zip(fake, real)) / len(fake)
        loss = self.gan_weight * l_gan + self.feature_weight * l_fm
        return loss, {"l_gan": float(l_gan.detach()), "l_fm": float(l_fm.detach())}

    def update(self, out: torch.Tensor, gt: torch.Tensor) -> dict[str, float]:
        """One discriminator step (vanilla GAN: real → 1, the generator's output → 0)."""
        real, fake = self.disc(gt)[0], self.disc(out.detach())[0]
        loss = F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + F.binary_cross_entropy_with_logits(
            fake, torch.zeros_like(fake)
        )
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"l_d": float(loss.detach()), "d_real": float(torch.sigmoid(real.detach()).mean()),
                "d_fake": float(torch.sigmoid(fake.detach()).mean())}  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        return {"disc": self.disc.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume; the learning rate stays the config's (a resumed run may be given another)."""
        lr = self.opt.param_groups[0]["lr"]
        self.disc.load_state_dict(state["disc"])
        self.opt.load_state_dict(state["opt"])
        for g in self.opt.param_groups:
            g["lr"] = lr


# --------------------------------------------------------------------------------------------------
# The S2-GAN run: the shipped (faithful) SR model fine-tuned into the sharp one
# --------------------------------------------------------------------------------------------------

SHARP_RECIPE: dict[str, Any] = dict(
    gan_weight=0.1,  # Real-ESRGAN's 0.1 (the official DiffIR uses 1.0 beside a VGG term)
    feature_weight=5.0,  # feature matching: about the pixel L1 at the start
    usm_gt=True,
    encoder_frac=0.0,  # CPEN_S2 and the denoiser are trained already (the IPR L1 keeps them there)
    lr=1e-4,  # the official S2-GAN rate
    sr_bicubic_prob=0.0,  # the sharp model is for real photos: real-world degradations only
    batch=4,
)
"""The S2-GAN stage on top of a finished stage 2 (``run_config`` overrides; ``--set`` changes them)."""


def interpolate(faithful: nn.Module, sharp: nn.Module, alpha: float) -> nn.Module:
    """ESRGAN's network interpolation: every weight ``alpha · sharp + (1 − alpha) · faithful``. The
    GAN model is a fine-tune of the faithful one, so the blend trades detail against fidelity smoothly
    and without the artefacts of blending the two outputs."""
    mixed = copy.deepcopy(faithful)
    own = sharp.state_dict()
    mixed.load_state_dict({k: torch.lerp(v.float(), own[k].float(), alpha) for k, v in faithful.state_dict().items()})
    return mixed


def export(run: Path, out: Path, base_core_hours: float, faithful: Path, alpha: float = 1.0) -> dict[str, Any]:
    """The run's latest EMA weights (``run/best``), interpolated with ``faithful`` by ``alpha``, as a
    shipped style (float16), and its ``training.json``: the GAN stage's compute on top of the model
    it fine-tuned (the card is written by hand)."""
    import json

    from ..checkpoints import load_network, save_pretrained
    from ..files import write_atomic
    from .campaign import compute_spent

    spent = compute_spent(run, runs="")
    model = interpolate(load_network(faithful), load_network(run / "best"), alpha)
    save_pretrained(model, out, dtype=torch.float16)  # type: ignore[arg-type]
    info = {"s2_gan": spent, "alpha": alpha, "fine_tuned_from": {"core_hours": base_core_hours},
            "total": {"core_hours": round(base_core_hours + spent["core_hours"], 4),
                      "gpu_minutes": spent["gpu_minutes"]}}  # fmt: skip
    write_atomic(out / "training.json", (json.dumps(info, indent=1) + "\n").encode())
    return info


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    from ..checkpoints import WEIGHTS_DIR
    from .config import parse_sets, run_config
    from .loop import train

    p = argparse.ArgumentParser(prog="python -m diffir.training.gan", description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=0.0, help="time budget in all (a resumed run adds the rest)")
    p.add_argument("--run-dir", type=Path, default=Path("runs/sr_gan"))
    p.add_argument("--init", type=Path, default=WEIGHTS_DIR / "sr", help="the finished stage 2 (default: shipped)")
    p.add_argument("--teacher", type=Path, default=Path("runs/sr/s1/best"), help="its stage-1 network")
    p.add_argument("--set", action="append", metavar="KEY=JSON", help="override a TrainConfig field")
    p.add_argument("--export", type=Path, metavar="DIR", help="then write the weights there (e.g. weights/sr_sharp)")
    p.add_argument("--alpha", type=float, default=1.0, help="export alpha · GAN + (1 - alpha) · the --init model")
    args = p.parse_args(argv)
    if args.minutes > 0:
        shipped = json.loads((args.init / "config.json").read_text())
        model = {k: v for k, v in shipped.items() if k not in ("model_type", "task", "stage")}
        overrides = {**SHARP_RECIPE, "model": model, "init": str(args.init), "teacher": str(args.teacher),
                     "minutes": args.minutes, **parse_sets(args.set)}  # fmt: skip
        train(run_config(args.run_dir, overrides, "sr", "s2"), args.run_dir)
    if args.export:
        base = json.loads((args.init / "training.json").read_text())["total"]["core_hours"]
        print(json.dumps(export(args.run_dir, args.export, base, args.init, args.alpha), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
