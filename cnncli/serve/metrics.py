"""The service's counters and latency histogram, in Prometheus' text format (version 0.0.4).

Updated only from the server's event loop, so no lock; with ``--workers N`` each worker counts
its own requests (a scrape reaches one of them).
"""

from __future__ import annotations

import bisect
from collections import Counter

#: Upper bounds of the latency histogram's buckets, in seconds (1 ms to 10 s).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """Requests and errors by path and status, rows predicted, and request latency."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()
        self.rows = 0
        self.bucket_counts = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self.latency_sum = 0.0

    def observe(self, path: str, status: int, seconds: float, rows: int = 0) -> None:
        """Count one answered request.

        Args:
            path: the endpoint (an unknown path counts as ``other``, so a scan cannot grow
                the metrics without bound).
            status: the HTTP status sent.
            seconds: from the request's arrival to its last byte.
            rows: rows predicted for it.
        """
        self.requests[(path, status)] += 1
        self.rows += rows
        self.bucket_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def render(self) -> str:
        """All metrics as Prometheus text."""
        lines = [
            "# HELP cnncli_requests_total HTTP requests answered, by path and status.",
            "# TYPE cnncli_requests_total counter",
        ]
        for (path, status), count in sorted(self.requests.items()):
            lines.append(f'cnncli_requests_total{{path="{path}",status="{status}"}} {count}')
        lines += [
            "# HELP cnncli_errors_total HTTP requests answered with a 4xx or 5xx status.",
            "# TYPE cnncli_errors_total counter",
        ]
        errors: Counter[str] = Counter()
        for (path, status), count in self.requests.items():
            if status >= 400:
                errors[path] += count
        for path, count in sorted(errors.items()):
            lines.append(f'cnncli_errors_total{{path="{path}"}} {count}')
        lines += [
            "# HELP cnncli_rows_total Rows predicted.",
            "# TYPE cnncli_rows_total counter",
            f"cnncli_rows_total {self.rows}",
            "# HELP cnncli_request_seconds Time from a request's arrival to its last byte.",
            "# TYPE cnncli_request_seconds histogram",
        ]
        total = 0
        for bound, count in zip((*LATENCY_BUCKETS, None), self.bucket_counts, strict=True):
            total += count
            le = "+Inf" if bound is None else repr(bound)
            lines.append(f'cnncli_request_seconds_bucket{{le="{le}"}} {total}')
        lines += [
            f"cnncli_request_seconds_sum {self.latency_sum!r}",
            f"cnncli_request_seconds_count {total}",
        ]
        return "\n".join(lines) + "\n"
