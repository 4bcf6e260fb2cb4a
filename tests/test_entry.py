"""The precheck's sweep jobs: a job whose swept keys only set values is checked on a copy of the
composed base; it must be exactly the config Hydra composes for that job."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from searchr1.config.compose import ConfigSource, compose_in, hydra_initialized
from searchr1 import entry
from searchr1.entry import _hydra_args, sweep_job_config, sweep_jobs, without_sweep_axes
from tests.support.compose import REPO


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


@pytest.mark.slow  # composes every job of each sweep the way Hydra does
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


# A single run's config is composed and typed once, by the precheck, and run through Hydra's launcher API.
_COUNTED_RUN = """
import json, sys
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from searchr1 import cli, entry
counts = {"compose": 0, "to_typed": 0}
load, to_typed = ConfigLoaderImpl.load_configuration, entry.to_typed
def counted_load(self, *args, **kwargs):
    counts["compose"] += 1
    return load(self, *args, **kwargs)
def counted_to_typed(cfg):
    counts["to_typed"] += 1
    return to_typed(cfg)
ConfigLoaderImpl.load_configuration, entry.to_typed = counted_load, counted_to_typed
seen = []
body = lambda ctx: seen.append(ctx.cfg.seed)
if sys.argv[1] == "--hydra-main":  # what @hydra.main alone does with the same command line
    sys.argv = ["searchr1", *sys.argv[2:]]
    cli.run = body
    entry.register_configs()
    cli._hydra_main()
else:
    sys.argv = ["searchr1", *sys.argv[1:]]
    entry.start("searchr1", cli._hydra_main, body)
print(json.dumps({**counts, "seen": seen}))
"""


def _counted_run(*argv: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _COUNTED_RUN, *argv], capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_single_run_is_composed_and_typed_once_and_its_run_dir_is_hydras(tmp_path):
    ours, hydras = tmp_path / "ours", tmp_path / "hydras"
    assert _counted_run(f"hydra.run.dir={ours}", "seed=7") == {"compose": 1, "to_typed": 1, "seen": [7]}
    counted = _counted_run("--hydra-main", f"hydra.run.dir={hydras}", "seed=7")
    assert counted["seen"] == [7] and counted["compose"] == 2  # @hydra.main composes twice: its mode, the run
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        mine = (ours / ".hydra" / name).read_text().replace(str(ours), "<run dir>")
        assert mine == (hydras / ".hydra" / name).read_text().replace(str(hydras), "<run dir>"), name
    assert (ours / "searchr1.log").is_file()


def test_the_private_hydra_calls_left_are_pinned():
    """entry.py reads Hydra's command line with Hydra's own parser and resolves --config-path by Hydra's
    rule; neither has a public home. Both are checked here, and on any Hydra but 1.3.x this fails first."""
    import hydra
    from hydra._internal.utils import compute_search_path_dir, get_args_parser

    assert hydra.__version__.startswith("1.3."), (
        f"Hydra {hydra.__version__}: re-check entry.py's private calls (get_args_parser, compute_search_path_dir) "
        "and run_composed against Hydra's own run (test above), then widen this pin"
    )
    src = REPO / "src"
    private = {
        (path.relative_to(src).as_posix(), alias.name)
        for path in src.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hydra._internal")
        for alias in node.names
    }
    assert private == {("searchr1/entry.py", "get_args_parser"), ("searchr1/entry.py", "compute_search_path_dir")}
    args = get_args_parser().parse_args(["-m", "--config-dir", "d", "--config-name", "c", "--cfg", "job", "a=1"])
    assert (args.multirun, args.config_dir, args.config_name, args.cfg, args.overrides) == (
        True,
        "d",
        "c",
        "job",
        ["a=1"],
    )
    assert all(hasattr(args, flag) for flag in entry._NOTHING_TO_RUN)
    assert compute_search_path_dir(None, "searchr1.cli", "conf") == "pkg://searchr1/conf"
    assert compute_search_path_dir(None, "searchr1.cli", "pkg://x.conf") == "pkg://x.conf"
    assert compute_search_path_dir(None, "searchr1.cli", "/abs/conf") == "/abs/conf"
