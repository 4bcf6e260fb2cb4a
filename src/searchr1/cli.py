"""The ``python -m searchr1`` entry point: validate, build the run context, dispatch to a trainer."""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from searchr1.config.secrets import install_log_redaction
from searchr1.entry import CONFIG_MODULE, CONFIG_NAME, VERSION_BASE, run_checked, start
from searchr1.preflight import run_dir_lock
from searchr1.run import RunContext, save_resolved_config

log = logging.getLogger("searchr1")


def main() -> None:
    start("searchr1", _hydra_main, run)


@hydra.main(version_base=VERSION_BASE, config_path=f"pkg://{CONFIG_MODULE}", config_name=CONFIG_NAME)
def _hydra_main(cfg: DictConfig) -> None:
    run_checked(cfg, run, program="searchr1")


def run(ctx: RunContext) -> None:
    install_log_redaction(ctx.secrets)
    with run_dir_lock(ctx.run_dir):  # a second run in this dir fails here, before it writes anything
        if ctx.cfg.trainer.in_process:  # Miles' launch runs its own (on the cluster with trainer.ray_address)
            from searchr1.trainers.local.preflight import run_preflight

            # Before anything is written or logged, and before torch's import and a model load: a bad
            # key, file, index or retriever URL costs one line in seconds and leaves no run dir.
            run_preflight(ctx.cfg, ctx.run_dir)
        save_resolved_config(ctx)
        log.info("run %s in %s", ctx.run_name, ctx.run_dir)
        try:
            if ctx.cfg.trainer.in_process:
                from searchr1.trainers.local.plan import plan_lines

                for line in plan_lines(ctx.cfg):
                    log.info("%s", line)
                from searchr1.trainers.local.train import train

                train(ctx)
            else:
                from searchr1.trainers.miles.launch import launch

                launch(ctx)
        finally:
            log.info("run dir: %s", ctx.run_dir)
