"""``searchr1-verify-template``: does a tokenizer's chat template keep the rollout's token ids faithful?"""
