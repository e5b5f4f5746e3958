"""DiffIR web app: ``python app.py`` (honours GRADIO_SERVER_NAME / GRADIO_SERVER_PORT).

Also the entry point of the Hugging Face Space (ZeroGPU): ``spaces`` must be imported before
anything initialises CUDA, and the models are loaded (and moved to the GPU) at module level.
"""

import spaces  # noqa: F401, I001  (first: ZeroGPU patches CUDA on import)

import logging
import time

from diffir.app import build_demo, launch_kwargs, preload_models, queue

_t0 = time.perf_counter()
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
missing = preload_models()
for task, why in missing.items():
    logging.getLogger("diffir").warning("%s unavailable: %s", task, why)
demo = queue(build_demo())

if __name__ == "__main__":
    logging.getLogger("diffir").info("models loaded and app built in %.1f s", time.perf_counter() - _t0)
    demo.launch(**launch_kwargs())
