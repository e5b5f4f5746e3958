"""``python -m diffir.campaign``: a time-boxed training campaign (``diffir.training.campaign``)."""

from .training.campaign import main

if __name__ == "__main__":
    raise SystemExit(main())
