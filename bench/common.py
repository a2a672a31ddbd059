"""What every benchmark section shares: the data it reads, memory readings, and the figures it reports.

A section is a module of `bench/` with `run(quick: bool) -> list[Figure]`; `python -m bench` runs
them in one process tree and prints one table. Each figure carries the baseline measured in the same
run, so the ratio means something on whatever machine runs it.
"""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
FIXTURES = ROOT / "tests" / "fixtures"


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured value beside its same-run baseline.

    `higher_is_better` says which way the ratio reads; `target` is the issue's goal in the figure's
    unit (a floor when higher is better, a ceiling otherwise), or for ratio targets `ratio_target`.
    """

    section: str
    name: str
    value: float
    unit: str
    baseline_name: str = ""
    baseline: float | None = None
    target: float | None = None
    ratio_target: float | None = None
    higher_is_better: bool = True
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or not self.baseline or not self.value:
            return None
        return self.value / self.baseline if self.higher_is_better else self.baseline / self.value

    @property
    def met(self) -> bool | None:
        """Whether every target given is reached; None when the figure has none."""
        checks: list[bool] = []
        if self.target is not None:
            checks.append(self.value >= self.target if self.higher_is_better else self.value <= self.target)
        if self.ratio_target is not None:
            ratio = self.ratio
            checks.append(ratio is not None and ratio >= self.ratio_target)
        return all(checks) if checks else None


def have_shared_data() -> bool:
    return (SHARED_DATA / "exports").is_dir()


def rss_mb(key: str = "VmHWM") -> float:
    """Peak (VmHWM) or current (VmRSS) resident memory of this process, in MB.

    /proc's values belong to this process image; `ru_maxrss` would carry the parent's peak over exec.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def reset_peak_rss() -> None:
    """Start VmHWM afresh from the current RSS (Linux ≥ 4.0), so a phase's peak is its own."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def percentile(values: Sequence[float], q: float) -> float:
    """The value at rank round(q/100 · (n−1)) of the sorted values (q in 0..100); 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}" if abs(value) >= 1 else f"{value:.3g}"
    return f"{text} {unit}".strip()


def table(figures: Sequence[Figure]) -> str:
    """A Markdown table: figure, value, baseline, ratio, target, met."""
    lines = [
        "| section | figure | tgmon | baseline | ratio | target | met |",
        "|---|---|---:|---|---:|---|:-:|",
    ]
    for f in figures:
        base = f"{f.baseline_name}: {_fmt(f.baseline, f.unit)}" if f.baseline_name else "-"
        ratio = f"×{f.ratio:.2f}" if f.ratio is not None else "-"
        goals = []
        if f.target is not None:
            goals.append(("≥ " if f.higher_is_better else "≤ ") + _fmt(f.target, f.unit))
        if f.ratio_target is not None:
            goals.append(f"×{f.ratio_target:g}")
        met = {True: "yes", False: "**no**", None: ""}[f.met]
        name = f"{f.name} ({f.note})" if f.note else f.name
        goal = ", ".join(goals) or "-"
        value = _fmt(f.value, f.unit)
        lines.append(f"| {f.section} | {name} | {value} | {base} | {ratio} | {goal} | {met} |")
    return "\n".join(lines)
