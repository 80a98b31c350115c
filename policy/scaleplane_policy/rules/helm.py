"""Helm charts pinned to an exact version.

Checked on kubernetes:helm.sh/v3:Release and kubernetes:helm.sh/v4:Chart. A range ("^1.2",
"~3.13", ">=1", "*") or no version at all picks whatever the repository serves on the day.
A chart from a local directory is pinned by the repository's own files and needs no version.

A v4 Chart is a component the Kubernetes provider registers without its inputs, so in a real
`pulumi preview` policies see no chart and no version: the rule then has nothing to judge and
stays silent; the offline plan, which records the chart's inputs, checks it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from ..kube import KubeObject
from ..values import get, is_unknown

CHART_TYPES = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart")
EXACT_VERSION = re.compile(
    r"^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$"
)


def is_local_chart(chart: str) -> bool:
    return chart.startswith(("./", "../", "/", "file://")) or chart in (".", "..")


def check_chart_versions(obj: KubeObject, options: Mapping[str, Any]) -> Iterator[str]:
    """helm-chart-versions: every Helm release or chart names an exact chart version."""
    if obj.type not in CHART_TYPES:
        return
    chart = get(obj.props, "chart")
    version = get(obj.props, "version")
    if chart is None or is_unknown(chart) or is_unknown(version):
        return
    kind = obj.type.split(":")[-1]
    where = f'Helm {kind} {obj.name} (chart "{chart}")'
    if isinstance(chart, str) and is_local_chart(chart) and options.get("allowLocalCharts", True):
        return
    if version is None or version == "":
        yield f"{where} sets no version: it installs whatever the repository serves today"
    elif not isinstance(version, str) or not EXACT_VERSION.match(version):
        yield f"{where} version {version!r} is not an exact version (x.y.z)"
