"""Tools the policy may call: search, calculator, python, http, and tools other packages register."""
