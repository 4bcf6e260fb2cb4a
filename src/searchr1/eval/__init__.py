"""Evaluation without training: the paper's table (``searchr1-eval``) and the periodic hook both trainers call."""

from searchr1.eval.runner import evaluate, evaluate_examples

__all__ = ["evaluate", "evaluate_examples"]
