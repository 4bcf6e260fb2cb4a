"""The embedded CPU trainer: a real small model, an in-process engine, GRPO and checkpoints."""
