"""Measurement: parameter and MAC counts, throughput and memory."""
from .benchmark import BenchResult, benchmark
from .profile import ModelProfile, count_macs, count_params, profile_model

__all__ = ["BenchResult", "ModelProfile", "benchmark", "count_macs", "count_params", "profile_model"]
