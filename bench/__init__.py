"""Benchmarks: `make bench` (python -m bench). Each figure is a ratio to a baseline
measured in the same run on the same machine, never an absolute goal."""
