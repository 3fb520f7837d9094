"""PSD rows of the patterns benchmark (refold vs paragami 0.42).

Called by ``benchmarks/patterns_bench.py``; also runs on its own::

    OPENBLAS_NUM_THREADS=1 python benchmarks/_psd_rows.py

Each row is ``(label, refold_seconds, paragami_seconds_or_None, note)``; the
note gives the goal and the largest difference between the two answers,
relative to the largest entry of paragami's.
"""
from __future__ import annotations

import timeit

import autograd
import autograd.numpy as anp
import numpy as np

from refold.patterns import autograd_rules
from refold.patterns.containers import PatternArray
from refold.patterns.psd import PSDSymmetricMatrixPattern


def _best(fun, repeat=5):
    """Best wall time of one call, in seconds."""
    timer = timeit.Timer(fun)
    number, _ = timer.autorange()
    number = max(1, number // 5)
    return min(timer.repeat(repeat=repeat, number=number)) / number


def _diff(ours, theirs):
    if hasattr(ours, "toarray"):
        ours = ours.toarray()
    if hasattr(theirs, "toarray"):
        theirs = theirs.toarray()
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))


def _note(goal, diff):
    return "goal >= {}x; max rel. diff {}".format(
        goal, "-" if diff is None else "{:.1e}".format(diff))


def _row(label, ours, theirs, goal):
    """Time ``ours`` (and ``theirs`` if given); compare their answers."""
    ours_time = _best(ours)
    if theirs is None:
        return (label, ours_time, None, _note(goal, None))
    return (label, ours_time, _best(theirs),
            _note(goal, _diff(ours(), theirs())))


def rows(paragami=None) -> list:
    """Benchmark rows ``(label, refold s, paragami s or None, note)``.

    Parameters
    ----------
    paragami : module or None
        paragami imported with the numpy-2 shim, or None to skip its column.
    """
    # Importing paragami replaces some of refold's autograd linalg rules.
    autograd_rules.register()
    out = []
    ours_arr = PatternArray((1000,), PSDSymmetricMatrixPattern(3))
    theirs_arr = None if paragami is None else paragami.PatternArray(
        (1000,), paragami.PSDSymmetricMatrixPattern(3))
    free = np.random.default_rng(0).standard_normal(6000)
    value = ours_arr.fold(free, free=True)
    fold = lambda v: ours_arr.fold(v, free=True)
    flatten = lambda a: ours_arr.flatten(a, free=True)
    weights = np.random.default_rng(1).standard_normal((1000, 3, 3))
    objective = lambda fold_fun: (
        lambda v: anp.sum(weights * fold_fun(v) ** 2))
    if theirs_arr is not None:
        theirs_fold = lambda v: theirs_arr.fold(v, free=True)
        theirs_flatten = lambda a: theirs_arr.flatten(a, free=True)

    out.append(_row(
        "PSD 3x3 x1000 fold+flatten free, validated (PatternArray)",
        lambda: flatten(fold(free)),
        None if theirs_arr is None else
        (lambda: theirs_flatten(theirs_fold(free))), 100))
    out.append(_row(
        "PSD 3x3 x1000 gradient through free fold",
        lambda: autograd.grad(objective(fold))(free),
        None if theirs_arr is None else
        (lambda: autograd.grad(objective(theirs_fold))(free)), 100))

    psd50 = PSDSymmetricMatrixPattern(50)
    # A well-conditioned covariance (random points are ill-conditioned).
    draws = np.random.default_rng(2).standard_normal((50, 50))
    value50 = draws @ draws.T / 50 + np.eye(50)
    free50 = psd50.flatten(value50, free=True)
    theirs50 = None if paragami is None else \
        paragami.PSDSymmetricMatrixPattern(50)
    out.append(_row(
        "PSD 50x50 fold free",
        lambda: psd50.fold(free50, free=True),
        None if theirs50 is None else
        (lambda: theirs50.fold(free50, free=True)), 10))

    out.append(_row(
        "PSD 3x3 x1000 freeing Jacobian (sparse)",
        lambda: ours_arr.freeing_jacobian(value),
        None if theirs_arr is None else
        (lambda: theirs_arr.freeing_jacobian(value)), 100))
    out.append(_row(
        "PSD 50x50 freeing Jacobian (sparse)",
        lambda: psd50.freeing_jacobian(value50),
        None if theirs50 is None else
        (lambda: theirs50.freeing_jacobian(value50)), 100))
    return out


def _main():
    from _common import import_paragami
    paragami = import_paragami()
    print("{:<58} {:>11} {:>11} {:>8}  {}".format(
        "case", "refold (s)", "paragami (s)", "ratio", "note"))
    for label, ours, theirs, note in rows(paragami):
        ratio = "{:.0f}x".format(theirs / ours) if theirs else "-"
        print("{:<58} {:>11.3e} {:>11} {:>8}  {}".format(
            label, ours, "-" if theirs is None else "{:.3e}".format(theirs),
            ratio, note))


if __name__ == "__main__":
    _main()
