"""Loading official layouts strictly, detecting hyper-parameters, and refusing everything else."""

from __future__ import annotations

import dataclasses
import os
import pickle

import pytest
import torch

import diffir
from diffir import CheckpointError
from diffir.checkpoints import checkpoint_filter_fn, detect_config, to_official
from diffir.nets.diffusion import make_betas, official_buffers

from .conftest import LAYOUTS, layout
from .helpers import random_model


def random_official_state_dict(lay: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors of exactly the layout's keys and shapes; twins shared, schedule as official."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape, _ in lay["state_dict"]:
        sd[key] = torch.randn(shape, generator=g)
    for key in sd:
        if key.startswith("diffusion.model."):
            sd[key] = sd["denoise." + key[len("diffusion.model.") :]]
        elif key.startswith("diffusion.condition."):
            sd[key] = sd["condition." + key[len("diffusion.condition.") :]]
    if "diffusion.betas" in sd:
        for k, v in official_buffers(make_betas(0.1, 0.99, 4)).items():
            sd[f"diffusion.{k}"] = v
    return sd


@pytest.mark.slow
@pytest.mark.parametrize("path", LAYOUTS, ids=[p.stem for p in LAYOUTS])
def test_official_layout_loads_strictly_and_round_trips(path):
    lay = layout(path)
    sd = random_official_state_dict(lay)
    net = diffir.load_network(sd)
    off = lay["config"]
    cfg = net.config
    assert cfg.stage == lay["class"][-2:].lower()
    assert cfg.dim == off["dim"] and list(cfg.num_blocks) == off["num_blocks"] and list(cfg.heads) == off["heads"]
    assert cfg.ffn_expansion_factor == off["ffn_expansion_factor"]
    assert cfg.norm_type == off["LayerNorm_type"] and cfg.bias == off["bias"]
    assert cfg.n_encoder_res == off["n_encoder_res"] and cfg.scale == off.get("scale", 1)
    if cfg.task != "inpaint":
        assert cfg.num_refinement_blocks == off["num_refinement_blocks"]
    if cfg.stage == "s2":
        assert (cfg.linear_start, cfg.linear_end, cfg.timesteps) == (0.1, 0.99, 4)
    assert sum(p.numel() for p in net.parameters()) == lay["num_params"]
    # our state dict maps back onto the official one: same keys, same order, same tensors
    back = to_official(net)
    assert list(back) == [k for k, _, _ in lay["state_dict"]]
    for k, v in sd.items():
        assert torch.equal(back[k], v), k


def test_detect_config_finds_ffn_factor_and_variants():
    for name, cfg in diffir.VARIANTS.items():
        for stage in ("s1", "s2"):
            c = dataclasses.replace(cfg, stage=stage)
            shapes = {k: torch.empty(v.shape) for k, v in diffir.build_model(c).state_dict().items()}
            assert detect_config(shapes) == c, (name, stage)
    odd = diffir.DiffIRConfig(
        task="deblur", dim=48, num_blocks=(1, 1, 1, 1), ffn_expansion_factor=2.66, n_encoder_res=1
    )
    shapes = {k: torch.empty(v.shape) for k, v in diffir.build_model(odd).state_dict().items()}
    assert detect_config(shapes).ffn_expansion_factor == 2.66


def _save(tmp_path, obj, name="ckpt.pth"):
    path = tmp_path / name
    torch.save(obj, path)
    return path


def test_foreign_checkpoint_names_file_and_keys(tmp_path):
    esrgan = {"conv_first.weight": torch.zeros(64, 3, 3, 3), "body.0.rdb1.conv1.weight": torch.zeros(32, 64, 3, 3)}
    path = _save(tmp_path, {"params_ema": esrgan}, "RealESRGAN_x4plus.pth")
    with pytest.raises(CheckpointError, match=r"RealESRGAN_x4plus\.pth.*not a DiffIR network.*conv_first\.weight"):
        diffir.load_network(path)


def test_truncated_and_empty_files(tmp_path):
    model = random_model("deblur")
    good = _save(tmp_path, {"params": to_official(model)})
    data = good.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pth: cannot read the checkpoint"):
        diffir.load_network(tmp_path / "cut.pth")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.pth: file is empty"):
        diffir.load_network(tmp_path / "empty.pth")
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(CheckpointError, match="cannot read"):
        diffir.load_network(tmp_path / "text.pth")
    with pytest.raises(CheckpointError, match="no such file"):
        diffir.load_network(tmp_path / "missing.pth")


def test_shape_mismatch_and_missing_keys(tmp_path):
    sd = to_official(random_model("sr"))
    bad = dict(sd)
    bad["G.tail.1.weight"] = torch.zeros(3, 8, 3, 3)
    with pytest.raises(CheckpointError, match=r"shape mismatch.*tail\.1\.weight"):
        diffir.load_network(bad)
    missing = {k: v for k, v in sd.items() if "refinement" not in k}
    other = dict(sd)
    other["G.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"unexpected: dirformer\.extra\.weight"):
        diffir.load_network(other)
    # without refinement blocks the config changes, but CPEN/denoiser twins still must match
    assert diffir.load_network(missing).config.num_refinement_blocks == 0


def test_twins_and_schedule_are_checked():
    sd = to_official(random_model("deblur"))
    bad = dict(sd)
    bad["diffusion.model.resmlp.0.bias"] = sd["diffusion.model.resmlp.0.bias"] + 1
    with pytest.raises(CheckpointError, match="differs from its twin 'denoise.resmlp.0.bias'"):
        checkpoint_filter_fn(bad)
    no_twin = {k: v for k, v in sd.items() if not k.startswith("diffusion.condition.E.0")}
    with pytest.raises(CheckpointError, match="missing duplicated entries"):
        diffir.load_network(no_twin)
    sched = dict(sd)
    sched["diffusion.posterior_mean_coef1"] = sd["diffusion.posterior_mean_coef1"] * 1.01
    with pytest.raises(CheckpointError, match="posterior_mean_coef1"):
        diffir.load_network(sched)
    no_buf = {k: v for k, v in sd.items() if k != "diffusion.posterior_variance"}
    with pytest.raises(CheckpointError, match="missing: diffusion.posterior_variance"):
        diffir.load_network(no_buf)


def test_non_tensor_entries_rejected():
    with pytest.raises(CheckpointError, match="not tensors: G.patch_embed.proj.weight"):
        diffir.load_network({"G.patch_embed.proj.weight": [1, 2, 3]})


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/diffir_pwned",))


def test_never_unpickles_code(tmp_path):
    marker = "/tmp/diffir_pwned"
    if os.path.exists(marker):
        os.remove(marker)
    sd = to_official(random_model("deblur"))
    path = _save(tmp_path, {"params": sd, "payload": _Evil()})
    with pytest.raises(CheckpointError, match=r"not weights \(posix\.system\).*never runs code"):
        diffir.load_network(path)
    assert not os.path.exists(marker)
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"params": _Evil()}))
    with pytest.raises(CheckpointError):
        diffir.load_network(path)
    assert not os.path.exists(marker)


class ForeignConfig:
    """Stands for a Lightning checkpoint's OmegaConf hyper-parameters."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def test_lightning_checkpoint_with_foreign_objects(tmp_path):
    model = random_model("inpaint")
    state = {f"generator.{k}": v for k, v in to_official(model).items()}
    path = _save(tmp_path, {"state_dict": state, "hyper_parameters": ForeignConfig(lr=1)}, "last.ckpt")
    net = diffir.load_network(path)
    for k, v in model.state_dict().items():
        assert torch.equal(net.state_dict()[k], v)


def test_bare_state_dict_our_names_and_module_prefix():
    model = random_model("sr", stage="s1")
    net = diffir.load_network({f"module.{k}": v for k, v in model.state_dict().items()})
    assert net.config == model.config
    assert isinstance(net, diffir.DiffIRS1)


def test_convert_cli(tmp_path):
    from diffir.cli import main

    model = random_model("deblur")
    src = _save(tmp_path, {"params_ema": to_official(model)}, "net_g_latest.pth")
    assert main(["convert", str(src), str(tmp_path / "out")]) == 0
    net = diffir.load_network(tmp_path / "out")
    for k, v in model.state_dict().items():
        assert torch.equal(net.state_dict()[k], v)
    assert main(["convert", str(tmp_path / "nope.pth"), str(tmp_path / "out2")]) == 2
