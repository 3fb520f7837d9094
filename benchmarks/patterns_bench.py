"""Patterns benchmark: refold side by side with paragami 0.42 and the floor.

Run with single-threaded BLAS for steady timings::

    OPENBLAS_NUM_THREADS=1 python benchmarks/patterns_bench.py

Every row is measured in this one run; times are the best of several repeats.
paragami rows are skipped with a message when paragami is not installed
(``pip install -e ".[bench]"``); the numpy-2 shim ``numpy.product =
numpy.prod`` is applied before importing it.
"""
from __future__ import annotations

import os
import sys
import timeit

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import refold  # noqa: E402
from _common import import_paragami  # noqa: E402


def best_time(fun, repeat=5, number=None):
    """Best wall time of one call, in seconds."""
    timer = timeit.Timer(fun)
    if number is None:
        number, elapsed = timer.autorange()
        number = max(1, number // 5)
    return min(timer.repeat(repeat=repeat, number=number)) / number


def bounded_array_rows():
    """10^6 bounded array, free flatten, vs one np.log over it (the floor)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 2.0, size=10 ** 6)
    rows = []
    for label, lb, ub in [("lb=0", 0.0, np.inf), ("lb=0.001", 1e-3, np.inf),
                          ("lb=0, ub=3", 0.0, 3.0)]:
        pattern = refold.NumericArrayPattern((10 ** 6,), lb=lb, ub=ub)
        ours = best_time(lambda: pattern.flatten(x, free=True))
        floor = best_time(lambda: np.log(x))
        rows.append(("1e6 bounded array free flatten ({})".format(label),
                     ours, floor, "floor: one np.log; goal <= 2x"))
    return rows


def small_dict_rows(paragami):
    """A 20-entry PatternDict of small numeric arrays: fold and flatten."""
    def build(module):
        pattern = module.PatternDict()
        for i in range(20):
            if i % 3 == 0:
                pattern["p{}".format(i)] = module.NumericArrayPattern(
                    (3,), lb=0.0)
            elif i % 3 == 1:
                pattern["p{}".format(i)] = module.NumericArrayPattern(
                    (2, 2), lb=-1.0, ub=1.0)
            else:
                pattern["p{}".format(i)] = module.NumericArrayPattern((4,))
        return pattern

    ours = build(refold)
    value = ours.random(rng=0)
    free = ours.flatten(value, free=True)
    rows = []
    for label, ours_fun, theirs_fun in [
            ("20-entry PatternDict fold (free)",
             lambda p: (lambda: p.fold(free, free=True)), None),
            ("20-entry PatternDict flatten (free)",
             lambda p: (lambda: p.flatten(value, free=True)), None)]:
        ours_time = best_time(ours_fun(ours))
        theirs_time = None
        if paragami is not None:
            theirs = build(paragami)
            theirs_time = best_time(ours_fun(theirs))
        rows.append((label, ours_time, theirs_time, "goal: no slower"))
    return rows


def psd_rows(paragami):
    """PSD rows, from the PSD benchmark module."""
    try:
        from _psd_rows import rows
    except ImportError as err:  # pragma: no cover - reported in the table
        return [("PSD rows unavailable: {}".format(err), None, None, "")]
    return rows(paragami)


def format_table(rows, anchor_name="paragami"):
    header = "{:<58} {:>12} {:>14} {:>9}  {}".format(
        "case", "refold (s)", anchor_name + "/floor (s)", "ratio", "note")
    lines = [header, "-" * len(header)]
    for label, ours, theirs, note in rows:
        ours_s = "{:.3e}".format(ours) if ours is not None else "-"
        theirs_s = "{:.3e}".format(theirs) if theirs is not None else "skipped"
        ratio = "{:.1f}x".format(theirs / ours) if ours and theirs else "-"
        lines.append("{:<58} {:>12} {:>14} {:>9}  {}".format(
            label, ours_s, theirs_s, ratio, note))
    return "\n".join(lines)


def run():
    """All rows: (label, refold seconds, anchor/floor seconds, note)."""
    paragami = import_paragami()
    rows = []
    rows += psd_rows(paragami)
    rows += bounded_array_rows()
    rows += small_dict_rows(paragami)
    return rows, paragami is not None


def main():
    rows, have_paragami = run()
    if not have_paragami:
        print("paragami is not installed: its columns are skipped "
              "(pip install -e '.[bench]').")
    print("ratio = anchor (or floor) time / refold time; > 1 means refold "
          "is faster. For floor rows the goal is ratio >= 0.5.")
    print(format_table(rows))


if __name__ == "__main__":
    main()
