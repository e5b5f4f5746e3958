"""``python -m diffir.train``: the training loop's command line (``diffir.training.loop``)."""

from .training.loop import main

if __name__ == "__main__":
    raise SystemExit(main())
