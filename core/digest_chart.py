"""The digest's chart: matches over time as a small PNG bar chart (800×300 px).

matplotlib is imported inside `matches_chart` (it takes a noticeable time to import) and used through
its object-oriented API with the Agg canvas: no pyplot, no display, no global figure registry, only the
bundled DejaVu Sans font, a fixed style independent of the user's matplotlibrc.
"""

from __future__ import annotations

import io
from bisect import bisect_right
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from core.digest_schedule import zone

__all__ = ["HEIGHT", "WIDTH", "bins", "matches_chart"]

WIDTH, HEIGHT, DPI = 800, 300, 100
HOURLY_UP_TO = timedelta(days=2)  # longer periods get daily bins
BAR_COLOR = "#3b82f6"
_STYLE: Any = {  # Any: matplotlib types the keys as a Literal of every rc name
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 11,
    "axes.edgecolor": "#9ca3af",
    "axes.labelcolor": "#374151",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.axis": "y",
    "axes.axisbelow": True,
    "grid.color": "#e5e7eb",
    "grid.linewidth": 0.8,
    "xtick.color": "#4b5563",
    "ytick.color": "#4b5563",
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "text.usetex": False,
    "svg.fonttype": "none",
}


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def bins(since: datetime, until: datetime, tz: tzinfo) -> tuple[list[datetime], bool]:
    """Bin edges (UTC) covering [since, until) at local full hours or local midnights; and whether hourly.

    Daily edges are local midnights, so a DST day is a 23 or 25 hour bin.
    """
    since, until = _utc(since), _utc(until)
    hourly = until - since <= HOURLY_UP_TO
    local = since.astimezone(tz)
    if hourly:
        edge = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        edges = [edge]
        while edges[-1] < until:
            edges.append(edges[-1] + timedelta(hours=1))
    else:
        day = local.date()
        edges = [datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)]
        while edges[-1] < until:
            day += timedelta(days=1)
            edges.append(datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC))
    if len(edges) < 2:
        edges.append(edges[0] + timedelta(hours=1))
    return edges, hourly


def _labels(edges: list[datetime], hourly: bool, tz: tzinfo) -> tuple[list[int], list[str]]:
    starts = [e.astimezone(tz) for e in edges[:-1]]
    count = len(starts)
    step = max(1, -(-count // 12))  # at most about 12 labels
    if hourly and step > 1:
        step = next(s for s in (2, 3, 4, 6, 12, 24) if s >= step)
    positions, labels = [], []
    for i, start in enumerate(starts):
        if i % step:
            continue
        positions.append(i)
        if not hourly:
            labels.append(start.strftime("%d.%m"))
        elif i == 0 or start.hour < step or start.date() != starts[i - step].date():
            labels.append(start.strftime("%H:%M\n%d.%m"))
        else:
            labels.append(start.strftime("%H:%M"))
    return positions, labels


def matches_chart(times: list[datetime], since: datetime, until: datetime, tz: str, title: str) -> bytes:
    """A PNG bar chart of how many of `times` fall in each hour (periods up to 2 days) or day of
    [since, until), labelled in timezone `tz`; 800×300 px."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    zone_info = zone(tz)
    edges, hourly = bins(since, until, zone_info)
    counts = [0] * (len(edges) - 1)
    for moment in times:
        i = bisect_right(edges, _utc(moment)) - 1
        if 0 <= i < len(counts):
            counts[i] += 1
    positions, labels = _labels(edges, hourly, zone_info)

    with matplotlib.rc_context(_STYLE):
        figure = Figure(figsize=(WIDTH / DPI, HEIGHT / DPI), dpi=DPI)
        FigureCanvasAgg(figure)  # the Agg canvas, explicitly: no pyplot, no GUI backend
        try:
            axes = figure.add_subplot()
            axes.bar(range(len(counts)), counts, width=0.8, color=BAR_COLOR, linewidth=0)
            axes.set_title(title, loc="left")
            axes.set_xlim(-0.6, len(counts) - 0.4)
            axes.set_ylim(0, max(max(counts, default=0), 1) * 1.15)
            axes.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
            axes.set_xticks(positions, labels)
            axes.tick_params(axis="x", length=0, labelsize=8)
            figure.subplots_adjust(left=0.06, right=0.985, top=0.88, bottom=0.2)
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
            return buffer.getvalue()
        finally:
            figure.clear()
