"""The benchmark report: ratios read the right way round and targets judged on both value and ratio."""

from bench.common import Figure, percentile, table


def test_ratio_higher_is_better() -> None:
    f = Figure("ingest", "posts/s", 6000, "posts/s", "naive", 150, target=5000, ratio_target=30)
    assert f.ratio == 40
    assert f.met is True


def test_ratio_lower_is_better_and_missed_target() -> None:
    f = Figure("search", "p95", 80, "ms", "LIKE scan", 400, target=50, higher_is_better=False)
    assert f.ratio == 5
    assert f.met is False


def test_a_missed_ratio_target_fails_even_when_the_value_is_met() -> None:
    f = Figure("ingest", "posts/s", 6000, "posts/s", "naive", 1000, target=5000, ratio_target=30)
    assert f.met is False


def test_no_target_means_no_verdict_and_no_baseline_no_ratio() -> None:
    f = Figure("collector", "peak RSS", 120, "MB")
    assert f.met is None
    assert f.ratio is None


def test_percentile_takes_the_value_at_the_rounded_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 51.0  # round(0.5 * 99) = 50 → the 51st value
    assert percentile(values, 95) == 95.0
    assert percentile([], 95) == 0.0


def test_table_marks_missed_targets() -> None:
    text = table([Figure("export", "csv", 90_000, "rows/s", "plain csv", 45_000, target=100_000)])
    row = "| export | csv | 90,000 rows/s | plain csv: 45,000 rows/s | ×2.00 | ≥ 100,000 rows/s | **no** |"
    assert row in text
