"""The 1×1 convolutions of the inference path: float32, or int8 when a caller chooses it.

``--precision int8`` (CPU only, off unless chosen) runs every 1×1 convolution of the transformer
blocks as PyTorch's dynamically quantised linear layer on the channels-last view: weights int8 per
output channel, quantised per call (the folded weights change with each image's IPR anyway), activations
7-bit per call, accumulation in int32. These convolutions are most of DIRformer's arithmetic; the
3×3 and depthwise convolutions, the attention, the norms and CPEN stay float32. Measured on this
project's validation photos: ``python -m diffir.training.evaluate --task T --int8``; speed:
``python -m diffir.bench --backends`` (weights README).

The switch is a context variable, so one request's choice never leaks into another running in a
different thread (the app serves several tabs at once).
"""

from __future__ import annotations

import contextlib
import contextvars
import warnings
from collections.abc import Iterator

import torch
import torch.nn.functional as F

_INT8 = contextvars.ContextVar("diffir_int8_pointwise", default=False)
# torch 2.13 marks the quantised-tensor constructors deprecated (their successor lives in torchao, not
# installed here); the path works and is measured, so the warning is not repeated to CLI users
warnings.filterwarnings(
    "ignore", message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel", category=UserWarning
)


@contextlib.contextmanager
def int8_pointwise() -> Iterator[None]:
    """Inside ``with``: the blocks' 1×1 convolutions of this thread run in int8."""
    token = _INT8.set(True)
    try:
        yield
    finally:
        _INT8.reset(token)


def pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.conv2d(x, weight, bias)`` for a 1×1 ``weight``; int8 inside ``int8_pointwise()`` (batch 1)."""
    if not _INT8.get() or x.shape[0] != 1 or x.device.type != "cpu":
        return F.conv2d(x, weight, bias)
    w = weight[:, :, 0, 0].float()
    scales = w.abs().amax(dim=1).clamp_min(1e-12).double() / 127  # per output channel
    qw = torch.quantize_per_channel(w, scales, torch.zeros_like(scales, dtype=torch.long), 0, torch.qint8)
    packed = torch.ops.quantized.linear_prepack(qw, bias)
    _, c, h, wd = x.shape
    flat = x.permute(0, 2, 3, 1).reshape(h * wd, c)  # a view when x is channels-last
    # reduce_range=True: 7-bit activations, as quantize_dynamic does on x86. With 8 bits, AVX2's
    # u8×s8 pair sums saturate int16 (errors up to 15 % of the output's range on random inputs).
    out = torch.ops.quantized.linear_dynamic(flat, packed, True)
    return out.view(1, h, wd, -1).permute(0, 3, 1, 2)
