"""Benchmark: this package vs langchain_community's class vs a raw redis-py floor.

Run ``make bench`` (or ``python -m benchmarks --help``). It starts its own
redis-server on a free loopback port, measures every scenario of issue 6 with
the three contenders interleaved in one process, prints a Markdown table and a
PASS/FAIL line per target, and writes ``benchmarks/results/latest.json`` (and a
PNG chart).

Layout: ``workload`` (realistic messages), ``contenders`` (the three ways of
storing), ``scenarios`` (what is measured, how), ``targets`` (the issue's
ratios), ``report`` (table, JSON, chart), ``server`` (the private redis-server).
"""
