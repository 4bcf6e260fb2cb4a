"""Reports over run dirs and sweep dirs: tables, curves, the max_turns x topk heat map, a W&B workspace."""
