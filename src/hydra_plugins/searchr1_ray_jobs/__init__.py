"""Hydra launcher ``hydra/launcher=ray_jobs``: every sweep point becomes its own Ray job on an existing cluster.

Unlike hydra-ray-launcher, jobs are not Ray tasks: each point runs ``python -m searchr1 <overrides>`` as a
Ray *job* (the same thing ``ray job submit`` makes), so a Miles run inside it can own its placement groups.
Hydra finds this package by scanning the ``hydra_plugins`` namespace.

No ``from __future__ import annotations`` in this package: Hydra execs plugin modules before they are in
``sys.modules``, and dataclasses with string annotations then fail to resolve.
"""
