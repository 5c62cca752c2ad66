"""Training: one loop on accelerate with checkpoints and exact resume."""

from flipkd.trainer.loop import TrainResult, train_student

__all__ = ["TrainResult", "train_student"]
