"""Benchmarks, run on demand from the repository root as ``python -m bench.NAME``; each prints ratios
against a reference measured in the same run. The dated measurements are in bench/README.md."""
