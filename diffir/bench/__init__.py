"""``python -m diffir.bench``: speed, memory, tiling, app and training-throughput benchmarks."""

from .cases import app_case, big_case, run_case, sweep_case, tiling_case

__all__ = ["app_case", "big_case", "run_case", "sweep_case", "tiling_case"]
