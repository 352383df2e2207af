"""Distillation: the losses and the training loop."""
