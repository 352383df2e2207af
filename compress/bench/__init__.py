"""Measurement: latency and memory of a variant, each in a fresh process."""
