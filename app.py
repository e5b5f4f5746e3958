"""DiffIR web app: ``python app.py [--share]`` (honours GRADIO_SERVER_NAME / GRADIO_SERVER_PORT and
GRADIO_SHARE). Offline, ``--share`` starts locally anyway and says in one line why there is no link.

Also the entry point of the Hugging Face Space (ZeroGPU): ``spaces`` must be imported before
anything initialises CUDA, and the models are loaded (and moved to the GPU) at module level.
"""

import spaces  # noqa: F401, I001  (first: ZeroGPU patches CUDA on import)

import argparse
import logging
import time

from diffir.app import build_demo, launch_kwargs, preload_models, queue, share_setting
from diffir.tasks import TASKS

_t0 = time.perf_counter()
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
log = logging.getLogger("diffir")
missing = preload_models()
defaults = {TASKS[t].style().folder for t in TASKS}
for folder, why in missing.items():  # an extra look (weights/sr_sharp/) is optional: said, not warned
    (log.warning if folder in defaults else log.info)("%s unavailable: %s", folder, why)
demo = queue(build_demo())

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="The DiffIR web app.")
    parser.add_argument("--share", action="store_true", help="also make a public gradio.live link (or GRADIO_SHARE=1)")
    share, why_not = share_setting(parser.parse_args().share)
    if why_not:
        log.warning(why_not)
    log.info("models loaded and app built in %.1f s", time.perf_counter() - _t0)
    demo.launch(**launch_kwargs(share), prevent_thread_lock=True)
    if share and not demo.share_url:
        log.warning("no public link: Gradio could not open its tunnel (see above); serving locally only")
    log.info("ready in %.1f s", time.perf_counter() - _t0)
    demo.block_thread()
