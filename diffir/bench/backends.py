"""``python -m diffir.bench --backends``: the shipped DIRformers on ONNX Runtime and OpenVINO against
this project's torch path, alternating in one process, outputs compared (issue 15: adopt a backend
only if it is at least 1.5× faster with the same outputs). A fourth row, ``torch int8``, is our path
with ``--precision int8`` (the blocks' 1×1 convolutions dynamically quantised: ``nets/pointwise.py``);
its ``psnr_vs_torch`` is the price in quality on this random input (on photos: ``evaluate --int8``).

Each network is exported once with ``torch.onnx.export`` (the IPR an input, as a deployed model would
need it), at one 528 px tile (what a 1024 px image is cut into), 128 px for SR (512 px out).
Seconds are wall clock and CPU (user + system) time; on a busy machine the CPU figure is the fairer
one. The two runtimes are optional packages (``pip install onnxruntime openvino``); a missing one is
left out of the table, not fatal.
"""

from __future__ import annotations

import importlib.util
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..allocator import tune_allocator
from ..nets.pointwise import int8_pointwise
from ..training.metrics import psnr

SIDES = {"deblur": 528, "sr": 128, "inpaint": 528}


def _clock() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), r.ru_utime + r.ru_stime


def _runtimes(onnx_file: Path, threads: int) -> dict[str, Callable[[dict[str, np.ndarray]], np.ndarray]]:
    """The installed runtimes, each as ``feeds -> output``, set to ``threads`` and float32."""
    found: dict[str, Callable[[dict[str, np.ndarray]], np.ndarray]] = {}
    if importlib.util.find_spec("onnxruntime"):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        session = ort.InferenceSession(str(onnx_file), so, providers=["CPUExecutionProvider"])
        found[f"onnxruntime {ort.__version__}"] = lambda feeds: session.run(None, feeds)[0]
    if importlib.util.find_spec("openvino"):
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(
            core.read_model(str(onnx_file)),
            "CPU",
            {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"},
        )
        request = compiled.create_infer_request()
        found[f"openvino {ov.__version__.split('-')[0]}"] = lambda feeds: request.infer(feeds)[compiled.output(0)]
    return found


def _torch_int8(model: torch.nn.Module, x: torch.Tensor, ipr: torch.Tensor) -> np.ndarray:
    with int8_pointwise():
        return model.dirformer(x, ipr).numpy()


def backends_case(task: str, threads: int, repeat: int, side: int | None = None) -> dict:
    """One shipped DIRformer on every installed runtime: median seconds and max |diff| to torch."""
    from ..inference.pipeline import get_model

    tune_allocator()
    torch.set_num_threads(threads)
    model = get_model(task).eval()
    side = side or SIDES[task]
    x = torch.rand(1, 4 if task == "inpaint" else 3, side, side, generator=torch.Generator().manual_seed(0))
    if task == "inpaint":
        x[:, 3] = (x[:, 3] > 0.8).float()
    with torch.no_grad():
        ipr = model.prior(x, generator=torch.Generator().manual_seed(0))
        ref = model.dirformer(x, ipr).numpy()
        with tempfile.TemporaryDirectory() as tmp:
            onnx_file = Path(tmp) / "dirformer.onnx"
            t0 = time.perf_counter()
            torch.onnx.export(model.dirformer, (x, ipr), str(onnx_file), dynamo=False, opset_version=17,
                              input_names=["x", "ipr"], output_names=["y"])  # fmt: skip
            export_s = time.perf_counter() - t0
            runs = {
                "torch": lambda feeds: model.dirformer(x, ipr).numpy(),
                "torch int8": lambda feeds: _torch_int8(model, x, ipr),
                **_runtimes(onnx_file, threads),
            }
            feeds = {"x": x.numpy(), "ipr": ipr.numpy()}
            outs = {name: run(feeds) for name, run in runs.items()}  # also warms up
            times: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
            for _ in range(repeat):
                for name, run in runs.items():
                    a = _clock()
                    run(feeds)
                    b = _clock()
                    times[name].append((b[0] - a[0], b[1] - a[1]))
    rows = {
        name: {
            "wall_s": statistics.median(t[0] for t in ts),
            "cpu_s": statistics.median(t[1] for t in ts),
            "max_abs_diff": float(np.abs(outs[name] - ref).max()),
            "psnr_vs_torch": psnr(np.clip(outs[name], 0, 1), np.clip(ref, 0, 1)),
        }
        for name, ts in times.items()
    }
    return {"task": task, "side": side, "export_s": export_s, "backends": rows}
