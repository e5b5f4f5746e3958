"""The model-size comparison: every size trains for the same time and the table says what each reached."""

import json

from diffir.training.sizes import SIZES, main, size_config


def test_sizes_differ_only_in_the_model():
    for task, sizes in SIZES.items():
        preset = size_config(task, "preset")
        for size in sizes:
            other = size_config(task, size)
            assert other["model"] != preset["model"]
            assert {k: v for k, v in other.items() if k != "model"} == {k: v for k, v in preset.items() if k != "model"}


def test_two_sizes_train_for_equal_time_and_are_tabled(tmp_path, cache, monkeypatch, capsys):
    monkeypatch.setenv("DIFFIR_CACHE", str(cache))
    root = tmp_path / "sizes"
    tiny = ["patch=16", "batch=2", "image_scales=[1.0]", 'data="online"']
    args = ["--task", "deblur", "--minutes", "0.03", "--root", str(root), "--parallel", "2", "--speed-seconds", "1"]
    assert main(args + [x for s in tiny for x in ("--set", s)]) == 0
    rows = json.loads((root / "deblur.json").read_text())
    assert [r["size"] for r in rows] == ["preset", "medium"]
    assert rows[1]["params"] > rows[0]["params"] > 0
    for r in rows:
        assert r["steps"] > 0 and r["curve"] and r["final"] == r["curve"][-1][1]
        assert r["quiet_s_per_step"] > 0 and len(r["quiet_curve"]) == len(r["curve"])
        assert json.loads((root / f"deblur-{r['size']}" / "config.json").read_text())["minutes"] == 0.03
    assert (root / "deblur.png").stat().st_size > 0
    assert "deblur   medium" in capsys.readouterr().out
