"""A W&B workspace for the six mission metrics: a plain JSON spec built offline, applied when online.

The spec needs nothing but the standard library; applying it needs ``wandb-workspaces`` (W&B's library for
saved views) and network access, so that import stays inside ``build_workspace``.
"""

from __future__ import annotations

from typing import Any, Sequence

from searchr1.errors import UserError
from searchr1.report.runs import Run
from searchr1.report.summary import MISSION_METRICS, TOOL_PANELS, tool_names


def sweep_axes(runs: Sequence[Run]) -> list[str]:
    """Config keys the runs were swept over (override keys), without the seed: W&B groups runs by these."""
    keys = {o.split("=", 1)[0].lstrip("+~") for run in runs for o in run.overrides if "=" in o}
    return sorted(k for k in keys if k not in ("seed", "sweep", "sweep_name") and "/" not in k)


def config_prefix(runs: Sequence[Run]) -> str:
    """Where our settings sit in the W&B run config: top level (embedded trainer) or, for Miles runs,
    under the ``searchr1`` key of its custom config (Miles logs all of ``args``)."""
    trainer = (runs[0].config.get("trainer") or {}).get("name") if runs else None
    return "config.searchr1." if trainer == "miles" else "config."


def workspace_spec(runs: Sequence[Run]) -> dict[str, Any]:
    first = runs[0].config if runs else {}
    logger = first.get("logger") or {}
    sweep_name = first.get("sweep_name")
    prefix = config_prefix(runs)
    return {
        "entity": logger.get("entity"),
        "project": logger.get("project") or "searchr1",
        "name": f"searchr1 · {sweep_name or 'runs'}",
        # Filter on the config, not the W&B group: Miles names each run's group after the run.
        "filter": {f"{prefix}sweep_name": sweep_name} if sweep_name else {},
        "group_by": [f"{prefix}{axis}" for axis in sweep_axes(runs)],
        "aggregate": "mean",
        "spread": "stddev",
        "sections": [
            {
                "name": "Search-R1 mission metrics",
                "panels": [{"title": f"{label} ({key})", "metric": key} for key, label in MISSION_METRICS.items()],
            },
            *_tool_sections(runs),
        ],
    }


def _tool_sections(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """A section per tool when the runs used more than one."""
    tools = tool_names(runs)
    if len(tools) < 2:
        return []
    return [
        {
            "name": f"Tool: {tool}",
            "panels": [
                {"title": f"{tool} {label}", "metric": f"tool/{tool}/{key}"} for key, label in TOOL_PANELS.items()
            ],
        }
        for tool in tools
    ]


def build_workspace(spec: dict[str, Any]):
    """The ``wandb_workspaces`` Workspace for a spec (no network until ``.save()``)."""
    try:
        import wandb_workspaces.reports.v2 as wr
        import wandb_workspaces.workspaces as ws
    except ImportError as exc:
        raise UserError("applying the W&B workspace needs wandb-workspaces: pip install 'searchr1[report]'") from exc
    if not spec.get("entity"):
        raise UserError("the W&B workspace needs an entity: set logger.entity or pass --entity")
    sections = [
        ws.Section(
            name=section["name"],
            panels=[
                wr.LinePlot(
                    title=p["title"],
                    y=[p["metric"]],
                    groupby_aggfunc=spec["aggregate"],
                    groupby_rangefunc=spec["spread"],
                )
                for p in section["panels"]
            ],
            is_open=True,
        )
        for section in spec["sections"]
    ]
    conditions = [ws.Config(key.removeprefix("config.")) == value for key, value in spec["filter"].items()]
    filters = ws.And(*conditions) if conditions else ""
    return ws.Workspace(
        entity=spec["entity"],
        project=spec["project"],
        name=spec["name"],
        sections=sections,
        runset_settings=ws.RunsetSettings(
            filters=filters, groupby=[ws.Config(key.removeprefix("config.")) for key in spec["group_by"]]
        ),
    )


def apply_workspace(spec: dict[str, Any]) -> str:
    """Save the workspace to W&B (online); returns its URL."""
    workspace = build_workspace(spec)
    workspace.save()
    return workspace.url
