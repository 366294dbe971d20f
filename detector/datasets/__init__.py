"""Synthetic, labelled data sets: realistic metrics with known incidents, to measure detectors.

Real incident labels are scarce and private, so the detector's quality target (recall of
incidents and false alerts per series-week) is measured on generated data whose incidents we
injected ourselves. See :mod:`detector.datasets.shop`.
"""
