"""Throughput benchmarks (host side)."""
