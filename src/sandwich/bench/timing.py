"""Small timing and reporting helpers shared by the benchmarks."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def call_seconds(fn: Callable[[], object]) -> float:
    """Wall time of one call of ``fn()``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each function, timed round-robin (``a b c a b c ...``) so that a load that
    changes during the run (another job on the machine) weighs on every variant alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(call_seconds(fn))
    return {name: float(np.median(t)) for name, t in times.items()}


def print_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> None:
    """Print ``rows`` as a fixed-width table; ``columns`` are (key, header, format spec)."""
    widths = [max([len(header), 8] + [len(format(row[k], f)) for row in rows]) for k, header, f in columns]
    print("  ".join(h.rjust(w) for (_, h, _), w in zip(columns, widths)))
    for row in rows:
        print("  ".join(format(row[k], f).rjust(w) for (k, _, f), w in zip(columns, widths)))
