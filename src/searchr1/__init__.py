"""searchr1: train LLMs to use a search tool with RL (the Search-R1 recipe), on Miles or on CPU."""

__version__ = "0.1.0"
