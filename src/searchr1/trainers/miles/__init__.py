"""Miles integration: the train.py command, its custom config, the hooks Miles loads, and the launcher."""
