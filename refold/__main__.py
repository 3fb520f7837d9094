"""``python -m refold``: a tour that runs worked examples and prints tables.

Each section computes its numbers live. ``--plots DIR`` is accepted for the
figures of later sections and needs matplotlib (an optional extra).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import refold


def _table(header, rows, formats):
    widths = [max(len(h), *(len(f.format(r[i])) for r in rows))
              for i, (h, f) in enumerate(zip(header, formats))]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(f.format(v).rjust(w)
                               for v, f, w in zip(row, formats, widths)))
    return "\n".join(lines)


def tour_patterns(out=print):
    """A dict with a mean, a PSD covariance and a simplex: fold, free, back."""
    out("== Patterns: one flat free vector for a structured parameter ==")
    pattern = refold.PatternDict(free_default=True)
    pattern["mean"] = refold.NumericVectorPattern(2)
    pattern["cov"] = refold.PSDSymmetricMatrixPattern(2)
    pattern["weights"] = refold.SimplexArrayPattern(3, (1,))
    params = {"mean": np.array([1.0, -2.0]),
              "cov": np.array([[2.0, 0.3], [0.3, 0.5]]),
              "weights": np.array([[0.2, 0.3, 0.5]])}
    free = pattern.flatten(params)
    back = pattern.fold(free)
    out("folded value:")
    for key, value in params.items():
        out("  {:8s} {}".format(key, np.array2string(
            value, precision=3, separator=", ").replace("\n", "")))
    out("flat length {} (as-is), {} (free)".format(
        pattern.flat_length(free=False), pattern.flat_length(free=True)))
    rows = [(name, value) for name, value in
            zip(pattern.flat_names(free=True), free)]
    out(_table(["free coordinate", "value"], rows, ["{}", "{:+.6f}"]))
    error = max(float(np.max(np.abs(back[k] - params[k]))) for k in params)
    out("round trip fold(flatten(params)): max abs error {:.1e}".format(error))
    # Every free vector folds to a valid value: try a random one.
    random_value = pattern.fold(np.random.default_rng(0).normal(size=free.size))
    ok, _ = pattern.validate_folded(random_value)
    out("a random free vector folds to a valid parameter: {}".format(ok))
    # Jacobian and log-determinant of the change of variables.
    jac = pattern.unfreeing_jacobian(params)
    out("unfreeing Jacobian: {}x{} sparse, {} nonzeros; log|det| of the "
        "free map: {:+.4f}".format(jac.shape[0], jac.shape[1], jac.nnz,
                                    pattern.log_abs_det_freeing_jacobian(
                                        params)))
    out("")


SECTIONS = [("patterns", tour_patterns)]


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m refold",
        description="Run refold's worked examples and print their tables.")
    parser.add_argument("--plots", metavar="DIR", default=None,
                        help="also write PNG figures to DIR (needs "
                             "matplotlib)")
    parser.add_argument("--only", choices=[name for name, _ in SECTIONS],
                        default=None, help="run one section")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print("refold {} tour\n".format(refold.__version__))
    for name, section in SECTIONS:
        if args.only and name != args.only:
            continue
        if "plots" in section.__code__.co_varnames:
            section(plots=args.plots)
        else:
            section()
    print("tour finished in {:.1f} s".format(time.perf_counter() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
