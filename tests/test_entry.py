"""The precheck's sweep jobs: a job whose swept keys only set values is checked on a copy of the
composed base; it must be exactly the config Hydra composes for that job."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from searchr1.config.compose import ConfigSource, compose_in, hydra_initialized
from searchr1.entry import _hydra_args, sweep_job_config, sweep_jobs, without_sweep_axes


def _jobs_and_configs(argv: list[str]):
    args = _hydra_args(argv)
    source = ConfigSource()
    with hydra_initialized(source):
        base = compose_in(source, without_sweep_axes(args.overrides), return_hydra_config=True)
        jobs, swept = sweep_jobs(args, base)
        return [
            (
                job,
                OmegaConf.to_container(sweep_job_config(source, base, job, swept), resolve=True),
                OmegaConf.to_container(compose_in(source, job), resolve=True),
            )
            for job in jobs
        ]


@pytest.mark.parametrize(
    "argv,count",
    [
        (["+sweep=smoke_2x2"], 4),  # a preset's value axes
        (["-m", "seed=3,4", "rollout.max_turns=4", "tis=on"], 2),  # a command-line axis over a changed base
        (["-m", "tis=on,off", "search.topk=2,5"], 4),  # a swept group: composed per job
        (["+sweep=seeds", "data.num_entities=100,200"], 6),  # an axis that an interpolated path reads
    ],
)
def test_each_sweep_job_config_equals_hydras_composition(argv, count):
    results = _jobs_and_configs(argv)
    assert len(results) == count
    for job, checked, composed in results:
        assert checked == composed, job


def test_preset_axes_and_command_line_axes_both_count_as_swept():
    args = _hydra_args(["+sweep=smoke_2x2", "seed=1,2"])
    source = ConfigSource()
    with hydra_initialized(source):
        base = compose_in(source, without_sweep_axes(args.overrides), return_hydra_config=True)
        jobs, swept = sweep_jobs(args, base)
    assert swept == {"rollout.max_turns", "search.topk", "seed"}
    assert len(jobs) == 8
