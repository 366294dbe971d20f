"""Evaluation of detectors against labelled benchmarks (NAB scoring)."""
