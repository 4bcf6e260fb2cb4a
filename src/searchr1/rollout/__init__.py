"""The multi-turn search rollout: engines, the loop, and exact token accounting."""

from searchr1.rollout.tokens import prompt_ids

__all__ = ["prompt_ids"]
