"""Prometheus text of the service's counters: ``cnncli/serve/metrics.py``."""

from __future__ import annotations

from cnncli.serve.metrics import Metrics


def test_counts_requests_errors_rows_and_a_cumulative_latency_histogram():
    metrics = Metrics()
    metrics.observe("/predict", 200, 0.0004, rows=3)
    metrics.observe("/predict", 200, 0.02, rows=1)
    metrics.observe("/predict", 422, 0.003)
    metrics.observe("other", 404, 20.0)
    lines = set(metrics.render().splitlines())
    assert {
        'cnncli_requests_total{path="/predict",status="200"} 2',
        'cnncli_requests_total{path="/predict",status="422"} 1',
        'cnncli_errors_total{path="/predict"} 1',
        'cnncli_errors_total{path="other"} 1',
        "cnncli_rows_total 4",
        "# TYPE cnncli_request_seconds histogram",
        "cnncli_request_seconds_count 4",
    } <= lines
    # cumulative: each bucket counts every request at or under its bound
    buckets = {"0.001": 1, "0.005": 2, "0.025": 3, "10.0": 3, "+Inf": 4}
    for bound, count in buckets.items():
        assert f'cnncli_request_seconds_bucket{{le="{bound}"}} {count}' in lines
