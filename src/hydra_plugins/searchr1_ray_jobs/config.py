"""Structured config of the Ray jobs launcher, registered as ``hydra/launcher=searchr1_ray_jobs``."""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore


@dataclass
class RayJobsLauncherConf:
    _target_: str = "hydra_plugins.searchr1_ray_jobs.launcher.RayJobsLauncher"
    address: str = "${oc.env:RAY_ADDRESS,http://127.0.0.1:8265}"
    """Ray dashboard (job server) address of the existing cluster."""
    python: str = "python"
    """Python executable on the cluster that has searchr1 installed."""
    runtime_env: dict[str, Any] = field(default_factory=dict)
    """Ray runtime_env for every job (working_dir, env_vars, ...)."""
    pass_env: list[str] = field(default_factory=list)
    """Names of local environment variables copied into each job's env_vars (e.g. WANDB_API_KEY)."""
    entrypoint_num_cpus: float = 0.0
    """CPUs reserved for each job's driver process."""
    entrypoint_num_gpus: float = 0.0
    """GPUs reserved for each job's driver process (Miles reserves its own through placement groups)."""
    max_concurrent: int = 0
    """Jobs in flight at once; 0 submits every sweep point at once and lets the cluster queue them."""
    poll_s: float = 10.0
    """Seconds between status polls."""
    request_timeout_s: float = 30.0
    """Timeout of each HTTP request to the job server."""


ConfigStore.instance().store(
    group="hydra/launcher", name="searchr1_ray_jobs", node=RayJobsLauncherConf, provider="searchr1"
)
