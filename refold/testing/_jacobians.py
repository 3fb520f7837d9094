"""The derivative properties :func:`~refold.testing.check_pattern` checks:
``flat_indices``, the Jacobians and their log-determinants against autograd,
and the derivatives of ``fold`` and ``flatten`` against finite differences."""
from __future__ import annotations

import autograd
import numpy as onp
import scipy.sparse as osp
from autograd.test_util import check_grads
from autograd.tracer import getval

from refold.testing._compare import assert_folded_allclose
from refold.testing._derivatives import seeded_global_random
from refold.testing._properties import Skip, expect


def _masks(length, gen):
    yield onp.ones(length, bool)
    yield onp.zeros(length, bool)
    for p in (0.2, 0.5):
        yield gen.random(length) < p


def check_flat_indices(pattern, value, gen):
    flat_len, free_len = pattern.flat_length(False), pattern.flat_length(True)
    free0 = pattern.flatten(value, free=True)
    if flat_len and free_len:
        dependency = onp.asarray(autograd.jacobian(
            lambda v: pattern.flatten(pattern.fold(v, free=True),
                                      free=False))(free0)) != 0
    else:
        dependency = onp.zeros((flat_len, free_len), bool)
    for mask in _masks(flat_len, gen):
        folded_bool = pattern.fold(mask, free=False, validate_value=False)
        mask_before = mask.copy()
        expected = {False: onp.flatnonzero(mask),
                    True: onp.flatnonzero(dependency[mask].any(axis=0))}
        for free in (False, True):
            got = onp.asarray(pattern.flat_indices(folded_bool, free=free))
            expect(got.ndim == 1 and got.dtype.kind in "iu",
                   "flat_indices(free={}) should be a 1-d integer array, "
                   "got {}", free, got)
            expect(onp.array_equal(onp.sort(got), expected[free]),
                   "flat_indices(free={}) for the flat entries {} gave {}, "
                   "but the {} are {}", free, onp.flatnonzero(mask).tolist(),
                   onp.sort(got).tolist(),
                   "free coordinates they depend on (autograd Jacobian)"
                   if free else "selected flat positions",
                   expected[free].tolist())
        expect(onp.array_equal(mask, mask_before),
               "fold changed its boolean input")


def _autograd_jacobians(pattern, value):
    flat_len, free_len = pattern.flat_length(False), pattern.flat_length(True)
    if not (flat_len and free_len):
        return onp.zeros((free_len, flat_len)), onp.zeros((flat_len, free_len))
    freeing = autograd.jacobian(lambda v: pattern.flatten(
        pattern.fold(v, free=False), free=True))(
            pattern.flatten(value, free=False))
    unfreeing = autograd.jacobian(lambda v: pattern.flatten(
        pattern.fold(v, free=True), free=False))(
            pattern.flatten(value, free=True))
    return onp.asarray(freeing), onp.asarray(unfreeing)


def check_jacobians(pattern, value, tol):
    truth = dict(zip(("freeing", "unfreeing"),
                     _autograd_jacobians(pattern, value)))
    dense = {}
    for kind in ("freeing", "unfreeing"):
        method = getattr(pattern, kind + "_jacobian")
        shape = truth[kind].shape
        jac = method(value, sparse=True)
        expect(osp.issparse(jac), "{}_jacobian(sparse=True) returned a {}, "
               "expected a scipy.sparse matrix", kind, type(jac).__name__)
        expect(jac.shape == shape, "{}_jacobian has shape {}, expected {}",
               kind, jac.shape, shape)
        full = method(value, sparse=False)
        expect(type(full) is onp.ndarray, "{}_jacobian(sparse=False) "
               "returned a {}, expected a numpy.ndarray", kind,
               type(full).__name__)
        assert_folded_allclose(full, truth[kind],
                               name=kind + "_jacobian vs autograd", **tol)
        assert_folded_allclose(jac.toarray(), full,
                               name=kind + "_jacobian sparse vs dense", **tol)
        dense[kind] = full
    free_len = dense["freeing"].shape[0]
    assert_folded_allclose(dense["freeing"] @ dense["unfreeing"],
                           onp.eye(free_len),
                           name="freeing_jacobian @ unfreeing_jacobian",
                           **tol)
    return truth


def _independent_rows(matrix):
    """First rows of ``matrix``, in order, that are linearly independent."""
    scale = max(float(onp.max(onp.linalg.norm(matrix, axis=1), initial=0)),
                1e-300)
    basis, rows = [], []
    for i, row in enumerate(matrix):
        resid = row.astype(float)
        for _ in range(2):  # twice is enough for Gram-Schmidt
            for b in basis:
                resid = resid - (b @ resid) * b
        norm = onp.linalg.norm(resid)
        if norm > 1e-8 * scale:
            basis.append(resid / norm)
            rows.append(i)
            if len(rows) == matrix.shape[1]:
                break
    return rows


def check_log_dets(pattern, value, truth, tol):
    flat_len, free_len = pattern.flat_length(False), pattern.flat_length(True)
    results = {}
    for kind in ("freeing", "unfreeing"):
        try:
            results[kind] = float(getval(getattr(
                pattern, "log_abs_det_{}_jacobian".format(kind))(value)))
        except NotImplementedError:
            if flat_len == free_len:
                raise
            raise Skip() from None
    unfreeing = truth["unfreeing"]
    rows = _independent_rows(unfreeing) if flat_len != free_len \
        else list(range(flat_len))
    expect(len(rows) == free_len, "the unfreeing Jacobian has rank {} < "
           "{}, so the free parameterisation is degenerate", len(rows),
           free_len)
    expected = float(onp.linalg.slogdet(unfreeing[rows])[1]) if rows else 0.
    if flat_len == free_len and free_len:
        expected_free = float(onp.linalg.slogdet(truth["freeing"])[1])
    else:
        expected_free = -expected
    for kind, want in (("unfreeing", expected), ("freeing", expected_free)):
        got = results[kind]
        expect(abs(got - want) <= tol["atol"] + tol["rtol"] * abs(want)
               + 1e-10 * max(1.0, abs(want)),
               "log_abs_det_{}_jacobian is {!r}, but slogdet of the autograd "
               "Jacobian{} gives {!r}", kind, got,
               "" if flat_len == free_len else
               " (over its first independent flat coordinates)", want)


def check_grads_of_maps(pattern, value):
    free0 = onp.asarray(pattern.flatten(value, free=True), dtype=float)
    if free0.size == 0:
        raise Skip()
    maps = [("fold(free=True)", free0,
             lambda v: pattern.flatten(pattern.fold(v, free=True),
                                       free=False)),
            ("flatten(free=True) after fold", free0,
             lambda v: pattern.flatten(pattern.fold(v, free=True),
                                       free=True))]
    if pattern.flat_length(False) == free0.size:
        maps.append(("flatten(free=True) of a flat value",
                     onp.asarray(pattern.flatten(value, free=False),
                                 dtype=float),
                     lambda v: pattern.flatten(pattern.fold(
                         v, free=False, validate_value=False), free=True)))
    for what, point, fun in maps:
        fun.__name__ = what
        with seeded_global_random(0):
            try:
                check_grads(fun, modes=["fwd", "rev"], order=2)(point)
            except AssertionError as err:
                raise AssertionError("derivatives of {}: {}".format(
                    what, err)) from None
