"""Numerical parity with the official implementation: every reference vector, through the public API."""

from __future__ import annotations

import pytest
import torch

import diffir
from diffir.files import UMASK
from diffir.nets.diffusion import sample_ipr

from .conftest import VECTORS, load_vector, official_state_dict


def _first(out):
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_vector_official_forward(path):
    d = load_vector(path)
    net = diffir.load_network(official_state_dict(d))
    assert not net.training
    with torch.no_grad():
        if d["stage"] == "s2":
            torch.manual_seed(d["seed"])  # the official calling convention: seed, then net(x)
            out = net(d["input"])
        else:
            out = net(d["input"], d["gt"])
    if net.config.task == "inpaint":
        assert isinstance(out, tuple) and len(out) == 2
    torch.testing.assert_close(_first(out), d["output"], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("path", [p for p in VECTORS if not p.stem.endswith("_s1_small")], ids=lambda p: p.stem)
def test_vector_s2_internals(path):
    d = load_vector(path)
    net = diffir.load_network(official_state_dict(d))
    with torch.no_grad():
        c = net.cpen(d["input"])
        ipr, x0s = sample_ipr(net.denoiser, c, net.schedule(), d["x_T"])
        ipr_api = net.prior(d["input"], noise=d["x_T"])
        gen = torch.Generator().manual_seed(d["seed"])
        ipr_gen = net.prior(d["input"], generator=gen)
    torch.testing.assert_close(c, d["cpen_out"], rtol=0, atol=1e-5)
    torch.testing.assert_close(torch.stack(x0s), d["denoise_outputs"], rtol=0, atol=1e-5)
    torch.testing.assert_close(ipr, d["ipr"], rtol=0, atol=1e-5)
    torch.testing.assert_close(ipr_api, d["ipr"], rtol=0, atol=1e-5)
    torch.testing.assert_close(ipr_gen, d["ipr"], rtol=0, atol=1e-5)  # same first draw as the global RNG


@pytest.mark.parametrize("path", [p for p in VECTORS if p.stem.endswith("_s1_small")], ids=lambda p: p.stem)
def test_vector_s1_ipr(path):
    d = load_vector(path)
    net = diffir.load_network(official_state_dict(d))
    with torch.no_grad():
        ipr = net.cpen(d["input"], d["gt"])
    torch.testing.assert_close(ipr, d["ipr"], rtol=0, atol=1e-5)


def test_vector_via_official_containers(tmp_path, vectors):
    """The same vectors through files: BasicSR .pth (params_ema preferred) and a Lightning .ckpt."""
    d = vectors["vector_sr_x4_small"]
    sd = official_state_dict(d)
    broken = {k: torch.zeros_like(v) for k, v in sd.items()}
    torch.save({"params": broken, "params_ema": sd}, tmp_path / "net_g.pth")
    net = diffir.load_network(tmp_path / "net_g.pth")
    torch.manual_seed(d["seed"])
    with torch.no_grad():
        torch.testing.assert_close(net(d["input"]), d["output"], rtol=1e-4, atol=1e-4)

    d = vectors["vector_inpaint_small"]
    teacher = vectors["vector_inpaint_s1_small"]
    state = {f"generator.{k}": v for k, v in official_state_dict(d).items()}
    state.update({f"generatorS1.{k}": v for k, v in official_state_dict(teacher).items()})
    state["discriminator.model0.0.weight"] = torch.zeros(3)
    state["loss_resnet_pl.impl.conv1.weight"] = torch.zeros(3)
    torch.save(
        {"state_dict": state, "epoch": 39, "global_step": 10, "hyper_parameters": {"lr": 1e-3}}, tmp_path / "last.ckpt"
    )
    net = diffir.load_network(tmp_path / "last.ckpt")
    torch.manual_seed(d["seed"])
    with torch.no_grad():
        out, none = net(d["input"])
    assert none is None
    torch.testing.assert_close(out, d["output"], rtol=1e-4, atol=1e-4)
    inpainted = (d["mask_padded"] * out + (1 - d["mask_padded"]) * d["image_padded"])[..., :37, :45]
    torch.testing.assert_close(inpainted, d["inpainted"], rtol=1e-4, atol=1e-4)


def test_our_format_round_trip_keeps_outputs(tmp_path, vectors):
    d = vectors["vector_deblur_small"]
    net = diffir.load_network(official_state_dict(d))
    diffir.save_pretrained(net, tmp_path / "deblur")
    assert {p.name for p in (tmp_path / "deblur").iterdir()} == {"config.json", "model.safetensors"}
    modes = {p.stat().st_mode & 0o777 for p in (tmp_path / "deblur").iterdir()}
    assert modes == {0o666 & ~UMASK}  # not the temporary file's private 0600
    again = diffir.load_network(tmp_path / "deblur")
    assert again.config == net.config
    for k, v in net.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k
    torch.manual_seed(d["seed"])
    with torch.no_grad():
        torch.testing.assert_close(again(d["input"]), d["output"], rtol=1e-4, atol=1e-4)
    # a lone safetensors file carries its config in the metadata
    lone = tmp_path / "lone.safetensors"
    lone.write_bytes((tmp_path / "deblur" / "model.safetensors").read_bytes())
    assert diffir.load_network(lone).config == net.config
