"""The recorder's log lines, and the CloudWatch metrics (embedded metric format) they carry
(no tests here)."""

from __future__ import annotations

import json
from collections import Counter


def json_lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            out.append(doc)
    return out


def metric_totals(docs: list[dict]) -> Counter:
    totals: Counter = Counter()
    for d in docs:
        for m in d.get("_aws", {}).get("CloudWatchMetrics", []):
            for metric in m["Metrics"]:
                dims = tuple(sorted((k, d[k]) for dims in m["Dimensions"] for k in dims if k != "service"))
                totals[(metric["Name"], dims)] += sum(d[metric["Name"]])
    return totals
