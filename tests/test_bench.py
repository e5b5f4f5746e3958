"""The benchmark's measurement functions run and report what they claim (timings are not asserted)."""

from __future__ import annotations

from diffir.bench import big_case, sweep_case


def test_sweep_case_reports_size_tiles_and_memory():
    r = sweep_case("deblur", 0.05, 128, threads=1)
    w, h = r["input"]
    assert abs(w * h - 0.05e6) < 0.01e6 and r["tiles"] > 1
    assert r["seconds"] > 0 and r["peak_rss_mib"] >= r["model_rss_mib"] > 0


def test_big_case_can_stop_after_a_few_tiles():
    r = big_case(threads=1, config="shipped", max_tiles=2)
    assert r["size"] == [4000, 3000] and r["tiles_run"] == 2
    assert r["tiles"] == 18 * 14  # 256 px tiles with 32 px overlap: a 224 px stride
    assert r["seconds_full_estimate"] > r["seconds"]
