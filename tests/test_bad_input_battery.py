"""The bad-input battery: more than 1000 bad inputs, table-driven, over every
public entry point and the methods users call (patterns, sensitivity, LR/EM covariances, the worked
models), each classified clean / terse / raw / NaN / wrong
(``tests/battery/_core.py``) and required to be clean: a ``ValueError`` or
``TypeError`` whose message names the argument (or the parameter path).

Run ``python -m tests.test_bad_input_battery`` for the table of classes.
"""
import collections

import pytest

from tests.battery import (cases_methods, cases_models, cases_patterns,
                           cases_sensitivity, cases_structure_drop)
from tests.battery._core import CLASSES, CLEAN, classify

CASES = (cases_patterns.cases() + cases_sensitivity.cases()
         + cases_models.cases() + cases_methods.cases()
         + cases_structure_drop.cases())


def test_battery_size_and_every_entry_point_covered():
    assert len(CASES) >= 300
    labels = {case.label.split(":")[0].split(".")[0] for case in CASES}
    for entry in ["NumericArrayPattern", "PSDSymmetricMatrixPattern",
                  "PatternDict", "FlattenFunctionInput", "HSLA", "EELA",
                  "Taylor", "CrossSensitivity", "refit", "sparse_hessian",
                  "get_cg_solver", "WeightSensitivity", "LR",
                  "EMCovariance", "ns", "gm", "mm", "MixedModelData",
                  "GLMMData", "glmm", "laplace_importance_sampling",
                  "SparseBlockHessian", "ArrowheadHessian", "OptimumChecker",
                  "GLMMObjective", "hessian_structure", "sandwich_covariance",
                  "predict_drop", "greedy_drop", "OLSDrop"]:
        assert entry in labels, entry
    assert len({case.label for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_bad_input_is_clean(case):
    kind, detail = classify(case)
    assert kind == CLEAN, f"{kind}: {detail}"


def table():
    """``{class: count}`` and the non-clean cases."""
    counts = collections.Counter({kind: 0 for kind in CLASSES})
    bad = []
    for case in CASES:
        kind, detail = classify(case)
        counts[kind] += 1
        if kind != CLEAN:
            bad.append((kind, case.label, detail))
    return counts, bad


if __name__ == "__main__":      # pragma: no cover
    counts, bad = table()
    print(f"{len(CASES)} bad inputs: " + ", ".join(
        f"{kind} {counts[kind]}" for kind in CLASSES))
    for kind, label, detail in bad:
        print(f"  {kind:5s} {label}: {detail[:150]}")
