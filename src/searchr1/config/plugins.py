"""Tools other modules register through the ``searchr1.tools`` entry-point group (searchr1's own included).

Composition needs each tool's config node before the rest of a run exists, so the entry points are read
here, at the config floor; the objects are :class:`searchr1.tools.base.ToolSpec`s, used here only for their
``name`` and ``config_cls``. A package adds a tool with, in its pyproject.toml::

    [project.entry-points."searchr1.tools"]
    weather = "my_package.weather:TOOL"
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from searchr1.config.checks import ConfigError

ENTRY_POINT_GROUP = "searchr1.tools"


def registered_tools() -> dict[str, Any]:
    """Every registered tool spec by name (the entry point's name must equal the spec's)."""
    specs: dict[str, Any] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name in specs:
            continue  # the same distribution seen twice on sys.path (an editable install and a build dir)
        spec = _load(point)
        if getattr(spec, "name", None) != point.name:
            raise ConfigError(
                f"entry point {point.name} = {point.value} ({ENTRY_POINT_GROUP}) names a tool called "
                f"{getattr(spec, 'name', None)!r}; the entry point's name must be the tool's name"
            )
        specs[point.name] = spec
    return specs


def _load(point: Any) -> Any:
    try:
        return point.load()
    except Exception as exc:  # a broken third-party package must say which entry point broke
        raise ConfigError(f"tool entry point {point.name} = {point.value} failed to load: {exc}") from exc
