"""The example results shipped in ``examples/<task>/results/`` are used only while they were made with
the weights the app loads; a campaign that keeps the weights must not make them stale."""

from __future__ import annotations

import json
import shutil

from diffir.app import examples
from diffir.app.examples import MANIFEST, weights_id
from diffir.settings import ROOT
from diffir.tasks import TASKS


def test_shipped_example_results_belong_to_the_shipped_weights(monkeypatch):
    monkeypatch.delenv("DIFFIR_WEIGHTS", raising=False)
    manifest = json.loads(MANIFEST.read_text())
    for task in TASKS:  # otherwise every app start remakes them: run python -m diffir.app.examples
        assert manifest[task] == {"weights": weights_id(task), "seed": examples.SEED}, task


def test_a_card_update_keeps_the_results_a_config_change_does_not(tmp_path, monkeypatch):
    folder = tmp_path / "sr"
    shutil.copytree(ROOT / "weights" / "sr", folder)
    monkeypatch.setattr(examples, "resolve_weights", lambda task: folder)
    before = weights_id("sr")
    (folder / "training.json").write_text("{}\n")
    (folder / "README.md").write_text("# another card\n")
    assert weights_id("sr") == before
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "timesteps": 2}))
    assert weights_id("sr") != before
