"""``searchr1-export``: a trained policy as a standard Hugging Face model dir (or Miles' conversion of one)."""
