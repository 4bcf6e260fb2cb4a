"""The functions Miles loads by dotted path, ``searchr1.trainers.miles.hooks.<name>`` (command.py writes them
into its command line); each lives in the module of its concern:

- ``generate``, ``generate_legacy`` (``--custom-generate-function-path``): generate.py, our rollout loop
  against SGLang at Miles' router, filling Miles' ``Sample`` (samples.py);
- ``reward`` (``--custom-rm-path``): reward_hook.py;
- ``tis_weights`` (``--custom-tis-function-path``): tis_hook.py;
- ``log_rollout`` (``--custom-rollout-log-function-path``), ``log_eval``
  (``--custom-eval-rollout-log-function-path``): rollout_log.py, our rollout metrics and the health rules,
  which end a run through the stop file (stop_file.py).

What they share per rollout process (typed settings, HTTP session, engine and tool clients) is runtime.py.
"""

from __future__ import annotations

from searchr1.trainers.miles.generate import generate, generate_legacy
from searchr1.trainers.miles.reward_hook import reward
from searchr1.trainers.miles.rollout_log import log_eval, log_rollout
from searchr1.trainers.miles.tis_hook import tis_weights

__all__ = ["generate", "generate_legacy", "log_eval", "log_rollout", "reward", "tis_weights"]
