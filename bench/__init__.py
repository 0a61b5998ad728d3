"""Benchmarks: scripts that print tables and save plots (run them as `python -m bench.NAME`)."""
