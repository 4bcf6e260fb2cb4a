"""Warm starts searchr1 ships: small LoRA adapters, each with the provenance.json that says how to make it again."""
