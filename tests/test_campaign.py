"""A campaign runs stage 1, stage 2, validation and export end to end (test-sized: tiny model, a
few seconds per stage), replaces the shipped weights only when it scores higher, and resumes."""

from __future__ import annotations

import json

import pytest
import torch

from diffir import load_network, save_pretrained
from diffir.training.campaign import curve_points, keep_curve, run_campaign, shipped_network

from .helpers import random_model, tiny_model_fields


def _overrides(task: str, cache_dir) -> dict:
    return dict(model=tiny_model_fields(task), patch=16, batch=2, cache=str(cache_dir), image_scales=[1.0], data="online",
                log_every=1, val_minutes=10.0, ckpt_minutes=10.0)  # fmt: skip


@pytest.mark.parametrize("task", ["sr", "deblur", "inpaint"])
def test_campaign_end_to_end(tmp_path, cache, monkeypatch, task):
    monkeypatch.setenv("DIFFIR_CACHE", str(cache))
    weights, runs = tmp_path / "weights", tmp_path / "runs"
    record = run_campaign(task, 0.12, runs=runs, weights=weights, overrides=_overrides(task, cache), long_side=64)
    assert record["replaced"] and record["shipped"]["mean"] == float("-inf")  # nothing shipped: any model wins
    shipped = load_network(weights / task)
    assert shipped.config.stage == "s2" and shipped.config.task == task
    st = torch.load(runs / task / "s1" / "last.pt", weights_only=True)
    assert st["seconds"] >= 0.6 * 0.12 * 60  # stage 1 had its share of the budget (and stopped after it)
    assert torch.load(runs / task / "s2_0" / "last.pt", weights_only=True)["seconds"] >= 0.4 * 0.12 * 60
    info = json.loads((weights / task / "training.json").read_text())
    assert info["total"]["core_hours"] > 1.0 and len(info["campaigns"]) == 1
    (curve,) = info["curves"]  # the curve is kept with the weights, not only in runs/
    assert curve["lineage"] == record["date"] and curve["points"][0]["run"] == "s1"
    assert "<!-- campaigns:start -->" in (weights / task / "README.md").read_text()
    assert abs(record["float16_change_db"]) < 0.05

    # a second campaign starts from what is there, extends stage 1, makes a new stage 2 and keeps the
    # shipped model unless it is beaten; here the shipped one is made unbeatable by construction
    better = load_network(weights / task)
    save_pretrained(better, weights / task)
    import diffir.training.campaign as C

    monkeypatch.setattr(
        C, "validation_score", lambda m, *a, **k: {"mean": 99.0 if m is not None and _is(m, better) else 1.0}
    )
    before = (weights / task / "model.safetensors").read_bytes()
    # the presets may have changed size since stage 1 began: the new stage 2 takes stage 1's network
    # and a later campaign may change the patch size of the lineage it continues
    other = {**_overrides(task, cache), "model": {**tiny_model_fields(task), "dim": 2 * tiny_model_fields(task)["dim"]},
             "patch": 24}  # fmt: skip
    record2 = run_campaign(task, 0.12, runs=runs, weights=weights, overrides=other, long_side=64)
    assert (runs / task / "s2_1" / "best").is_dir()
    assert json.loads((runs / task / "s1" / "config.json").read_text())["patch"] == 24
    assert load_network(runs / task / "s2_1" / "best").config.dim == shipped.config.dim
    assert torch.load(runs / task / "s1" / "last.pt", weights_only=True)["step"] > st["step"]
    assert not record2["replaced"] and (weights / task / "model.safetensors").read_bytes() == before
    (curve2,) = json.loads((weights / task / "training.json").read_text())["curves"]  # the same lineage, grown
    assert curve2["lineage"] == curve["lineage"] and len(curve2["points"]) > len(curve["points"])
    assert "s2_1" in {p["run"] for p in curve2["points"]}


def _is(model, reference) -> bool:
    a, b = model.state_dict(), reference.state_dict()
    return all(torch.equal(a[k], b[k]) for k in a)


def test_campaign_without_runs_restarts_from_the_shipped_size(tmp_path, cache, monkeypatch, capsys):
    """A lost ``runs/`` (a new machine): stage 1 starts from the shipped model at the shipped size,
    not the preset's, so every tensor but CPEN_S1's first convolution carries over."""
    monkeypatch.setenv("DIFFIR_CACHE", str(cache))
    weights, runs = tmp_path / "weights", tmp_path / "runs"
    save_pretrained(random_model("deblur", "s2"), weights / "deblur")
    preset_free = {k: v for k, v in _overrides("deblur", cache).items() if k != "model"}
    run_campaign("deblur", 0.05, runs=runs, weights=weights, overrides=preset_free, long_side=64)
    s1 = json.loads((runs / "deblur" / "s1" / "config.json").read_text())
    assert s1["model"] == shipped_network(weights / "deblur")
    assert s1["model"]["dim"] == tiny_model_fields("deblur")["dim"]
    n = len(load_network(runs / "deblur" / "s1" / "best").state_dict())
    assert f"initialised {n - 1}/{n} tensors" in capsys.readouterr().out


def test_a_lost_runs_folder_keeps_its_curve_and_the_next_starts_after_it():
    info = {"before_campaigns": {"core_hours": 2.0}}
    keep_curve(info, "2026-11-28 00:18", [{"run": "s1", "step": 10, "hours": 0.5, "val_psnr": 20.0}])
    assert [p["hours"] for p in curve_points(info)] == [2.5] and curve_points(info)[0]["run"] == "s1"
    info["before_campaigns"]["core_hours"] = 4.0  # runs/ lost: what it had moves into before_campaigns
    keep_curve(info, "2026-12-07 14:44", [{"run": "s1", "step": 5, "hours": 0.25, "val_psnr": 21.0}])
    keep_curve(info, "2026-12-07 14:44", [{"run": "s1", "step": 5, "hours": 0.25, "val_psnr": 21.0},
                                           {"run": "s2_0", "step": 9, "hours": 0.75, "val_psnr": 21.5}])  # fmt: skip
    points = curve_points(info)
    assert [(p["run"], p["hours"]) for p in points] == [
        ("s1 (2026-11-28)", 2.5),
        ("s1 (2026-12-07)", 4.25),
        ("s2_0 (2026-12-07)", 4.75),
    ]
    keep_curve(info, "2026-12-07 14:44", [])  # nothing logged: what is stored stays
    assert curve_points(info) == points
