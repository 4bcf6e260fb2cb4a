"""A one-node stand-in for the Ray Python API a job entrypoint uses (init, nodes, remote, get), put on
the PYTHONPATH of the jobs the fake Ray job server runs (tests/support/ray_jobs_server.py)."""

from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

NODES = [{"NodeID": "fake-node-0", "Alive": True, "NodeManagerAddress": "127.0.0.1"}]


def init(address=None, **kwargs):
    assert address == "auto", "a job entrypoint joins its cluster with address='auto'"


def nodes():
    return [dict(node) for node in NODES]


class _RemoteFunction:
    def __init__(self, fn, options):
        self._fn, self._options = fn, options

    def options(self, **options):
        return _RemoteFunction(self._fn, {**self._options, **options})

    def remote(self, *args, **kwargs):
        strategy = self._options.get("scheduling_strategy")
        if isinstance(strategy, NodeAffinitySchedulingStrategy):
            assert strategy.node_id in {node["NodeID"] for node in NODES}, f"no node {strategy.node_id}"
        return self._fn(*args, **kwargs)  # one node, run now: the "object ref" is the value


def remote(*args, **options):
    if args and callable(args[0]):
        return _RemoteFunction(args[0], {})
    return lambda fn: _RemoteFunction(fn, options)


def get(refs):
    return list(refs) if isinstance(refs, list) else refs
