"""Experiments that train many runs and compare them (the ConvNeXt design roadmap)."""
from .roadmap import run_roadmap, step_costs

__all__ = ["run_roadmap", "step_costs"]
