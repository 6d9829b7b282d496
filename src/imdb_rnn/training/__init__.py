"""Training: the trainer, its plans, the epoch loop, objectives, checkpoints, stops, strategies."""
