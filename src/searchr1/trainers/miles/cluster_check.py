"""Preflight where the Miles job runs: a short Ray job checks every node of the cluster before training.

On a multi-node cluster the launcher is often not a node, so its own filesystem says nothing about
the checkouts, data and checkpoints the job will read, nor whether the job's files (custom config,
metrics, W&B) land on storage every node sees. The launcher (:func:`cluster_preflight`) submits
``python3 -m searchr1.trainers.miles.cluster_check <spec>`` through the Ray Jobs API with the
training job's runtime env; that entrypoint (:func:`main`) runs :func:`node_problems` as one Ray
task pinned to each alive node and prints one line per problem, which the launcher reports.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Optional, Sequence

from searchr1.config.schema import MilesTrainerConfig, SearchR1Config, backend_config
from searchr1.tools.registry import selected_nodes, tool_spec, typed_nodes

RESULT_PREFIX = "SEARCHR1_CLUSTER_CHECK "
VISIBLE_MARKER_PREFIX = ".searchr1-visible-"
JOB_TIMEOUT_S = 300.0
POLL_S = 1.0


@dataclass(frozen=True)
class PathCheck:
    """A path that must exist where the job runs, and the line that says so when it does not."""

    path: str
    kind: Literal["file", "dir"]
    problem: str

    def holds(self) -> bool:
        path = Path(self.path).expanduser()
        return path.is_file() if self.kind == "file" else path.is_dir()


def path_checks(cfg: SearchR1Config) -> list[PathCheck]:
    """Checkouts, data and checkpoints the Miles job reads, on whichever node it runs."""
    t = MilesTrainerConfig.of(cfg)
    checks = [
        PathCheck(
            f"{t.miles_root}/train.py",
            "file",
            f"trainer.miles_root={t.miles_root}: no Miles checkout there (train.py missing)",
        ),
        PathCheck(
            f"{t.megatron_root}/megatron",
            "dir",
            f"trainer.megatron_root={t.megatron_root}: no Megatron-LM checkout there (megatron/ missing)",
        ),
        _data("data.train_path", cfg.data.train_path),
        PathCheck(
            f"{cfg.model.hf_checkpoint}/config.json",
            "file",
            f"model.hf_checkpoint={cfg.model.hf_checkpoint}: no HF checkpoint there (config.json missing)",
        ),
    ]
    if t.eval_interval:
        checks.append(_data("data.test_path", cfg.data.test_path))
    if cfg.model.ref_load:  # Miles reads the iteration marker at parse time when the KL loss is on
        kl = " (needed by the KL loss: grpo.kl_loss_coef > 0)" if cfg.grpo.kl_loss_coef > 0 else ""
        checks.append(
            PathCheck(
                f"{cfg.model.ref_load}/latest_checkpointed_iteration.txt",
                "file",
                f"model.ref_load={cfg.model.ref_load}: no torch_dist checkpoint there (latest_checkpointed_iteration.txt "
                f"missing){kl}; convert the HF checkpoint with Miles' tools/convert_hf_to_torch_dist.py",
            )
        )
    return checks


def _data(key: str, path: str) -> PathCheck:
    return PathCheck(path, "file", f"{key}={path}: file not found (make it with `searchr1-data prepare`)")


def cluster_spec(cfg: SearchR1Config, visible_marker: Optional[Path]) -> dict[str, Any]:
    """What every node checks (JSON, no secrets: nodes name environment variables, never values): the path
    checks, each tool's services (its node and the search backend's), and a file the launcher wrote where the
    job writes its files (visible on a node only if that storage is shared)."""
    checks = path_checks(cfg)
    if visible_marker is not None:
        checks.append(
            PathCheck(
                str(visible_marker),
                "file",
                f"{visible_marker.parent} (the job's files) is not on storage this node sees; set "
                "hydra.run.dir or trainer.shared_dir to a directory every node mounts at one path",
            )
        )
    return {
        "paths": [dataclasses.asdict(check) for check in checks],
        "tools": {name: dataclasses.asdict(node) for name, node in selected_nodes(cfg).items()},
        "backend": dataclasses.asdict(cfg.backend),
    }


def node_problems(spec: Mapping[str, Any]) -> list[str]:
    """The spec's problems on the machine this runs on."""
    problems = [check.problem for check in (PathCheck(**c) for c in spec["paths"]) if not check.holds()]
    backend = backend_config(spec["backend"])
    for name, node in typed_nodes(spec["tools"]).items():
        problems += tool_spec(name).endpoints_problems(node, backend)
    return problems


# --------------------------------------------------------------------------- on the cluster
def main(argv: Optional[Sequence[str]] = None) -> int:
    """The Ray job's entrypoint: the spec's checks as one task on each alive node, one line per problem."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    spec = decode_spec((argv if argv is not None else sys.argv[1:])[0])
    ray.init(address="auto")
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    check = ray.remote(num_cpus=0)(node_problems)
    refs = [
        check.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False)).remote(
            spec
        )
        for node in nodes
    ]
    found = [
        f"node {node.get('NodeManagerAddress', node['NodeID'])}: {problem}"
        for node, problems in zip(nodes, ray.get(refs))
        for problem in problems
    ]
    print(RESULT_PREFIX + json.dumps({"nodes": len(nodes), "problems": found}), flush=True)
    return 1 if found else 0


def encode_spec(spec: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(spec).encode()).decode()


def decode_spec(text: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(text.encode()))


# --------------------------------------------------------------------------- on the launcher
def cluster_preflight(
    address: str, spec: Mapping[str, Any], runtime_env: Mapping[str, Any], *, timeout_s: float = JOB_TIMEOUT_S
) -> list[str]:
    """Run the checks on the cluster at ``address`` (Ray Jobs API); the problems found, one line each."""
    return asyncio.run(_run_check_job(address, spec, runtime_env, timeout_s))


async def _run_check_job(
    address: str, spec: Mapping[str, Any], runtime_env: Mapping[str, Any], timeout_s: float
) -> list[str]:
    import aiohttp

    from hydra_plugins.searchr1_ray_jobs.client import REQUEST_ERRORS, RayJobsClient

    submission = f"searchr1-preflight-{uuid.uuid4().hex[:12]}"
    entrypoint = f"python3 -m searchr1.trainers.miles.cluster_check {encode_spec(spec)}"
    where = f"trainer.ray_address={address}"
    async with aiohttp.ClientSession() as session:
        client = RayJobsClient(address, session, timeout_s=30.0)
        try:
            await client.submit(
                submission_id=submission,
                entrypoint=entrypoint,
                runtime_env=dict(runtime_env),
                metadata={"searchr1": "preflight"},
                num_cpus=0,
                num_gpus=0,
            )
            status = await _wait(client, submission, timeout_s)
            if status is None:
                await client.stop(submission)
                return [
                    f"{where}: the preflight job {submission} did not finish in {timeout_s:.0f} s (a busy or "
                    "stuck cluster?); set trainer.remote_preflight=false to skip it"
                ]
            logs = await client.logs(submission)
        except REQUEST_ERRORS as exc:
            return [f"{where}: the Ray job server did not run the preflight job ({type(exc).__name__}: {exc})"]
    return _problems_from_log(logs, where, submission, status.status)


async def _wait(client: Any, submission: str, timeout_s: float) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        status = await client.status(submission)
        if status.done:
            return status
        await asyncio.sleep(POLL_S)
    return None


def _problems_from_log(logs: str, where: str, submission: str, status: str) -> list[str]:
    for line in reversed(logs.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return list(json.loads(line[len(RESULT_PREFIX) :])["problems"])
    last = next((line for line in reversed(logs.splitlines()) if line.strip()), "no output")
    return [
        f"{where}: the preflight job {submission} ended {status} without a result (last line: {last[:200]}); "
        "is searchr1 importable on the cluster (pip install searchr1 there, or a shared checkout on PYTHONPATH)?"
    ]


if __name__ == "__main__":
    raise SystemExit(main())
