"""Ray's node-affinity strategy, as the fake one-node cluster reads it."""

from dataclasses import dataclass


@dataclass
class NodeAffinitySchedulingStrategy:
    node_id: str
    soft: bool
