"""Benchmark scripts (`python -m bench.<name>`): they print figures, they are not tests.

BENCHMARKS.md records what they printed, on which machine, and the command that reproduces it.
"""
