"""``python -m diffir.bench --inpaint-scale``: hole PSNR against the working scale of inpainting.

The shipped inpainting model on the validation photos with painted-stroke masks (the registry's
``painted`` evaluation variant), at 512 px long side (the evaluation size), for several ``hole_width`` settings
(the widest hole run at full scale; 0 = always full scale), beside OpenCV's Telea fill. The setting
with the best mean is what ``diffir.inference.inpaint.MAX_HOLE_WIDTH`` should be. Then, at that
width, the crop around the mask: the whole image ("whole") against crops with several margins; the
best is ``Options.crop_margin`` (``crop_trigger`` 0: always crop); where the whole image beats every
crop, ``Options.crop_trigger`` (images up to that size run whole) should cover this size.
"""

from __future__ import annotations

import numpy as np

WIDTHS = (0, 128, 96, 64, 48, 32, 24, 16)
MARGINS = (32, 64, 128, 256)


def run(
    sizes: tuple[int, ...] = (512,), widths: tuple[int, ...] = WIDTHS, margins: tuple[int, ...] = MARGINS
) -> list[dict]:
    from ..inference.imageio import Picture
    from ..inference.inpaint import hole_width
    from ..inference.pipeline import Options, get_model, restore
    from ..tasks import get_task
    from ..training.data import validation_images
    from ..training.evaluate import inpaint_opencv
    from ..training.metrics import psnr

    task, model = get_task("inpaint"), get_model("inpaint")
    rows = []
    for size in sizes:
        runs = {str(w): {"hole_width": w, "crop_trigger": 10**9} for w in widths}  # the whole image
        runs |= {f"margin {m}": {"crop_trigger": 0, "crop_margin": m} for m in margins}
        scores: dict[str, list[float]] = {"telea": [], **{k: [] for k in runs}}
        holes = []
        for i, gt in enumerate(v.astype(np.float32) / 255 for v in validation_images(None, size).values()):
            _, extra = task.eval_pair(gt, i, "painted")
            mask = extra["mask"]
            holes.append(hole_width(mask))
            scores["telea"].append(psnr(inpaint_opencv(gt, mask, "telea"), gt, mask=mask))
            for key, opts in runs.items():
                r = restore("inpaint", Picture(gt), mask=mask, model=model, options=Options(seed=i, tile=0, **opts))
                scores[key].append(psnr(r.picture.rgb, gt, mask=mask))
        row = {"long_side": size, "mean_widest_hole_px": float(np.mean(holes)),
               **{k: float(np.mean(v)) for k, v in scores.items()}}  # fmt: skip
        rows.append(row)
        cells = "  ".join(f"{k} {v:.2f}" for k, v in row.items() if k not in ("long_side", "mean_widest_hole_px"))
        print(f"{size} px (widest hole {row['mean_widest_hole_px']:.0f} px): {cells}", flush=True)
    return rows
