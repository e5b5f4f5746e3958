"""Training and evaluation: the photo pool, degradations, patch banks, the two-stage training loop,
time-boxed campaigns, metrics and the evaluation against classical baselines."""
