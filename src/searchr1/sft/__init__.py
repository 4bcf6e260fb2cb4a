"""Warm starts: supervised fine-tuning on multi-turn search trajectories before RL (``searchr1-sft``)."""
