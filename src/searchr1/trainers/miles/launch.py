"""Launch Miles: preflight, write the custom config and command into the run dir, submit the Ray job.

``trainer.dry_run=true`` stops after writing (and printing) the command. Otherwise the job goes to
``trainer.ray_address`` or to a Ray head we start on this node (and stop afterwards), with
``ray job submit``, whose output streams to the console and ``<run dir>/miles.log``; its exit
code becomes ours. Secrets travel only in the job's runtime env, written to a private temporary
file for the submission: never on a command line, never in the run dir.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional

import yaml

import searchr1
from searchr1.config.schema import MilesTrainerConfig, SearchR1Config
from searchr1.config.secrets import redact, redact_data, secret_env_names, shell_join_redacted
from searchr1.data.dataset import rewrite_prompts
from searchr1.data.errors import DataError
from searchr1.paths import RunDir
from searchr1.retriever.embedded import run_retriever
from searchr1.run import RunContext
from searchr1.tools.prompt import is_search_only, tool_calls_prompt, tools_prompt
from searchr1.tools.registry import selected_nodes, tool_spec
from searchr1.trainers.miles.cluster_check import VISIBLE_MARKER_PREFIX, cluster_preflight, cluster_spec
from searchr1.trainers.miles.command import MilesCommand, build_command
from searchr1.trainers.miles.custom_config import CUSTOM_CONFIG_FILE, build_custom_config, write_custom_config
from searchr1.trainers.miles.flags import miles_flags
from searchr1.trainers.miles.stop_file import HEALTH_STOP_FILE, clear_stop
from searchr1.trainers.miles.preflight import PreflightError, preflight, raise_on_problems

log = logging.getLogger(__name__)

RUNTIME_ENV_FILE = "miles_runtime_env.yaml"
EVAL_DATA_DIR = "eval_data"
TOOL_DATA_DIR = "tool_data"
LOCAL_RAY_ADDRESS = "http://127.0.0.1:8265"
HEAD_START_TIMEOUT_S = 120.0
HEAD_STOP_TIMEOUT_S = 60.0


def launch(ctx: RunContext) -> None:
    cfg, trainer = ctx.cfg, MilesTrainerConfig.of(ctx.cfg)
    # On a cluster we did not start, paths and retrievers are checked on its nodes, where the job reads them.
    on_cluster = bool(trainer.ray_address and trainer.remote_preflight and not trainer.dry_run)
    problems = preflight(cfg, env=os.environ, need_ray_cli=not trainer.dry_run, on_cluster=on_cluster)
    if trainer.dry_run:
        for problem in problems:
            log.warning("preflight (dry run, not launching): %s", problem)
    else:
        raise_on_problems(problems)
    flags = miles_flags()
    for unknown in flags.unknown(trainer.extra_args):  # a newer Miles may have it: warn, don't refuse
        log.warning("trainer.extra_args: %s is not a flag of Miles at %s", unknown, flags.commits.get("miles"))
    # A dry run starts nothing, an embedded retriever included.
    files = job_files(ctx)
    with contextlib.nullcontext() if trainer.dry_run else run_retriever(cfg, ctx.run_dir) as urls:
        write_custom_config(
            build_custom_config(cfg, run_dir=files.named, run_name=ctx.run_name, retriever_urls=urls),
            files.written / CUSTOM_CONFIG_FILE,
        )
        command = build_command(
            cfg,
            run_dir=files.named,
            run_name=ctx.run_name,
            custom_config_path=files.named / CUSTOM_CONFIG_FILE,
            python_path=[package_root()],
            eval_datasets=eval_datasets(ctx, files),
            train_data=tool_prompt_data(ctx, files),
        )
        if any(value in arg for arg in command.train_args for value in ctx.secrets):
            log.warning(
                "a secret value is in the Miles command (trainer.extra_args?): Miles logs its arguments to "
                "the W&B config; leave keys in the environment (searchr1 passes them to the job)"
            )
        address = trainer.ray_address or LOCAL_RAY_ADDRESS
        runtime_env = {"env_vars": command.env}
        replayable = submit_argv(address, ctx.run_dir / RUNTIME_ENV_FILE, command)
        save_command(ctx, replayable, runtime_env)
        if trainer.dry_run:
            print(shell_join_redacted(replayable, named_secrets(ctx)))
            log.info("dry run: command written to %s", ctx.run_dir / RunDir.MILES_COMMAND)
            return
        if on_cluster:
            raise_on_problems(check_cluster(ctx, address, files.named, runtime_env))
        stale = clear_stop(files.named)
        if stale is not None:  # an earlier launch's health stop must not end this one at its first rollout
            log.warning("health: removed %s left by an earlier launch (%s)", files.named / HEALTH_STOP_FILE, stale)
        code = _run(ctx, command, address, runtime_env)
    if code:
        log.error("Miles job failed (exit code %d); log: %s", code, ctx.run_dir / RunDir.MILES_LOG)
        raise SystemExit(code)


@dataclass(frozen=True)
class JobFiles:
    """The Miles job's files (custom config, eval data, metrics.jsonl, W&B): ``named`` is the dir its
    command names, ``written`` the dir this launch writes them into. They differ only in a dry run with
    trainer.shared_dir: a dry run writes nothing outside the run dir."""

    named: Path
    written: Path


def job_files(ctx: RunContext) -> JobFiles:
    """``<trainer.shared_dir>/<run name>/<run dir name>`` when set (created here, unless a dry run), else
    the run dir."""
    trainer = MilesTrainerConfig.of(ctx.cfg)
    shared = trainer.shared_dir
    if not shared:
        return JobFiles(named=ctx.run_dir, written=ctx.run_dir)
    named = Path(shared).expanduser() / ctx.run_name / ctx.run_dir.name
    if trainer.dry_run:
        log.info(
            "dry run: the job's files are written to %s; a launch puts them in %s (trainer.shared_dir)",
            ctx.run_dir,
            named,
        )
        return JobFiles(named=named, written=ctx.run_dir)
    log.info("the job's files go to %s (trainer.shared_dir)", named)
    try:  # the preflight's check cannot see every refusal (root on /proc, a dir removed meanwhile)
        named.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PreflightError(f"trainer.shared_dir={shared}: cannot create {named} ({exc.strerror or exc})") from None
    return JobFiles(named=named, written=named)


def check_cluster(ctx: RunContext, address: str, files: Path, runtime_env: dict) -> list[str]:
    """The preflight on every node of the cluster at ``address`` (trainer.ray_address), as a short Ray job
    with the training job's runtime env; a file written here must be visible there (the job's files are on
    shared storage)."""
    marker = files / f"{VISIBLE_MARKER_PREFIX}{uuid.uuid4().hex[:12]}"
    marker.write_text("written by the searchr1 launcher: every node of the cluster must see this file\n")
    log.info("checking every node of %s before training (trainer.remote_preflight)", address)
    try:
        return cluster_preflight(address, cluster_spec(ctx.cfg, marker), runtime_env)
    finally:
        marker.unlink(missing_ok=True)


def eval_datasets(ctx: RunContext, files: JobFiles) -> Optional[dict[str, str]]:
    """One eval set per data_source of the test split (Miles then logs eval/<source> for each), with the
    tools' prompts when the run has tools other than search."""
    test = Path(ctx.cfg.data.test_path)
    if not MilesTrainerConfig.of(ctx.cfg).eval_interval or not test.is_file():
        return None
    from searchr1.eval.datasets import split_by_source

    written = split_by_source(test, files.written / EVAL_DATA_DIR)
    messages_for = _tool_messages(ctx.cfg)
    if messages_for is not None:
        for path in written.values():
            rewrite_prompts(path, path, messages_for)
    return {name: str(files.named / EVAL_DATA_DIR / path.name) for name, path in written.items()}


def tool_prompt_data(ctx: RunContext, files: JobFiles) -> Optional[str]:
    """Miles reads the prompt column as it is: with tools other than search alone, the training split is
    written again with the tools' prompt (tools/prompt.py) and the command names that copy."""
    messages_for = _tool_messages(ctx.cfg)
    if messages_for is None:
        return None
    train = Path(ctx.cfg.data.train_path)
    if not train.is_file() and MilesTrainerConfig.of(ctx.cfg).dry_run:
        log.warning("dry run: %s is not here; a launch writes the tools' prompts from it into %s", train, TOOL_DATA_DIR)
    elif not train.is_file():
        raise DataError(f"data.train_path={train}: tools={ctx.cfg.tools} needs the file here to write its tool prompts")
    else:
        rewrite_prompts(train, files.written / TOOL_DATA_DIR / train.name, messages_for)
    log.info("tools=%s: Miles reads the training prompts from %s", ctx.cfg.tools, files.named / TOOL_DATA_DIR)
    return str(files.named / TOOL_DATA_DIR / train.name)


def _tool_messages(cfg: SearchR1Config) -> Optional[Callable[[str], list[dict[str, str]]]]:
    """How a question becomes the prompt's messages, when that is not the stored prompt."""
    if cfg.rollout.action_format == "tool_calls":  # the generate hook adds the tools' schemas when it renders
        return lambda question: [{"role": "user", "content": tool_calls_prompt(question)}]
    specs = [tool_spec(name).for_node(node) for name, node in selected_nodes(cfg).items()]
    if is_search_only(specs):
        return None
    return lambda question: [{"role": "user", "content": tools_prompt(question, specs)}]


def package_root() -> str:
    """The directory holding the ``searchr1`` package, so Ray workers import our hooks from it."""
    return str(Path(searchr1.__file__).resolve().parent.parent)


def submit_argv(address: str, runtime_env_path: Path, command: MilesCommand) -> list[str]:
    return [
        "ray",
        "job",
        "submit",
        "--address",
        address,
        "--runtime-env",
        str(runtime_env_path),
        "--",
        *command.entrypoint,
    ]


def save_command(ctx: RunContext, argv: list[str], runtime_env: dict) -> None:
    """The exact submission, replayable by hand (secrets are not in either file)."""
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    script = (
        "#!/usr/bin/env bash\n# Written by searchr1. Secrets (API keys) are not in this file or the runtime env:\n"
        "# searchr1 adds them from its environment at submission; one written into the command (trainer.extra_args)\n"
        "# is a reference to its environment variable here.\n"
    )
    (ctx.run_dir / RunDir.MILES_COMMAND).write_text(script + shell_join_redacted(argv, named_secrets(ctx)) + "\n")
    (ctx.run_dir / RUNTIME_ENV_FILE).write_text(yaml.safe_dump(redact_data(runtime_env, ctx.secrets), sort_keys=False))


def job_secrets(ctx: RunContext, env: Mapping[str, str]) -> dict[str, str]:
    """The secret environment variables our config names (serper, W&B) that are set here."""
    return {name: env[name] for name in secret_env_names(ctx.cfg) if env.get(name)}


def named_secrets(ctx: RunContext) -> dict[str, str]:
    """Name -> value of the secrets this run redacts (those long enough to be keys)."""
    return {name: value for name, value in job_secrets(ctx, os.environ).items() if value in ctx.secrets}


def _run(ctx: RunContext, command: MilesCommand, address: str, runtime_env: dict) -> int:
    env_vars = {**runtime_env["env_vars"], **job_secrets(ctx, os.environ)}
    with contextlib.ExitStack() as stack:
        env_path = stack.enter_context(_private_file(yaml.safe_dump({"env_vars": env_vars}, sort_keys=False)))
        if not MilesTrainerConfig.of(ctx.cfg).ray_address:
            stack.enter_context(_local_ray_head(ctx))
        return _stream(ctx, submit_argv(address, env_path, command))


@contextlib.contextmanager
def _private_file(text: str) -> Iterator[Path]:
    """A 0600 temporary file, removed afterwards (it holds secret values)."""
    fd, name = tempfile.mkstemp(prefix="searchr1-runtime-env-", suffix=".yaml")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


@contextlib.contextmanager
def _local_ray_head(ctx: RunContext) -> Iterator[None]:
    """A Ray head owned by this process: ``ray start --block`` stays in the foreground and, on SIGTERM,
    stops the processes it started and nothing else (``ray stop`` would kill every Ray process on the
    node: another user's job, a retriever served on Ray)."""
    gpus = MilesTrainerConfig.of(ctx.cfg).node_gpus
    log.info("starting a local Ray head with %d GPUs (trainer.ray_address is null)", gpus)
    start = ["ray", "start", "--head", "--block", "--num-gpus", str(gpus), "--disable-usage-stats"]
    with (ctx.run_dir / RunDir.MILES_LOG).open("a") as out:
        out.write(f"$ {shell_join_redacted(start, named_secrets(ctx))}\n")
        out.flush()
        head = subprocess.Popen(start, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_head(head, LOCAL_RAY_ADDRESS)
        yield
    finally:
        head.terminate()
        try:
            head.wait(timeout=HEAD_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.warning("the local Ray head (pid %d) did not stop in %.0f s; killing it", head.pid, HEAD_STOP_TIMEOUT_S)
            head.kill()
            head.wait()


def _wait_for_head(head: subprocess.Popen, address: str) -> None:
    """Until the head's job server answers; a head that exits first (e.g. a Ray already runs here) ends the run."""
    deadline = time.monotonic() + HEAD_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise SystemExit(
                f"the local Ray head exited with code {head.returncode} before it served jobs "
                f"(is Ray already running on this node? then set trainer.ray_address); log: {RunDir.MILES_LOG}"
            )
        try:
            with urllib.request.urlopen(address + "/api/version", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    raise SystemExit(f"the local Ray head did not answer at {address} within {HEAD_START_TIMEOUT_S:.0f} s")


def _stream(ctx: RunContext, argv: list[str]) -> int:
    """Run a command, teeing its output (redacted) to the console and the run dir's miles.log."""
    log_path = ctx.run_dir / RunDir.MILES_LOG
    with (
        log_path.open("a") as out,
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as proc,
    ):
        out.write(f"$ {shell_join_redacted(argv, named_secrets(ctx))}\n")
        assert proc.stdout is not None  # stdout=PIPE
        for line in proc.stdout:
            line = redact(line, ctx.secrets)
            out.write(line)
            sys.stdout.write(line)
        return proc.wait()
