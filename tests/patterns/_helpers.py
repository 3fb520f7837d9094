"""Helpers shared by the pattern tests: independent truths from autograd."""
import autograd
import numpy as np
from autograd.test_util import check_grads

#: Both autograd modes, for ``check_grads``.
MODES = ["fwd", "rev"]


def autograd_jacobian(pattern, value, kind):
    """The freeing (``kind='freeing'``) or unfreeing Jacobian of ``pattern``
    at the folded ``value``, by autograd through ``fold`` and ``flatten``."""
    if kind == "freeing":
        return autograd.jacobian(lambda v: pattern.flatten(
            pattern.fold(v, free=False), free=True))(
                pattern.flatten(value, free=False))
    return autograd.jacobian(lambda v: pattern.flatten(
        pattern.fold(v, free=True), free=False))(
            pattern.flatten(value, free=True))


def check_free_map_grads(pattern, free, order=2):
    """``check_grads`` (both modes) of the free ``fold`` at ``free`` and of
    the free ``flatten`` at its image; returns the image.

    Finite differences leave the constraint set, so ``flatten`` runs
    without validation.
    """
    check_grads(lambda v: pattern.fold(v, free=True),
                modes=MODES, order=order)(free)
    value = pattern.fold(free, free=True)
    check_grads(lambda x: pattern.flatten(x, free=True, validate_value=False),
                modes=MODES, order=order)(value)
    return value


def assert_round_trips(pattern, value, expected_free, rtol, atol):
    """``flatten(free=True)`` equals ``expected_free`` (an independent
    computation) and ``fold`` inverts it to ``rtol``; the non-free flat
    value is the array row-major and folds back exactly. Returns the free
    vector."""
    free = pattern.flatten(value, free=True)
    np.testing.assert_allclose(free, expected_free, rtol=rtol, atol=atol)
    np.testing.assert_allclose(pattern.fold(free, free=True), value,
                               rtol=rtol)
    flat = pattern.flatten(value, free=False)
    np.testing.assert_array_equal(flat, value.ravel())
    np.testing.assert_array_equal(pattern.fold(flat, free=False), value)
    return free


def assert_batched_protocol(pattern, free, batch_shape, fold_tol,
                            flatten_tol):
    """The batched ``_fold_b``/``_flatten_b`` of a stack of free vectors
    (leading dimensions ``batch_shape``) agree with the public ``fold``
    element by element (``fold_tol``), invert it (``flatten_tol``) and flatten
    non-free to the stack reshaped. Returns the folded stack."""
    folded = pattern._fold_b(free, batch_shape, True, None, ())
    assert folded.shape == batch_shape + pattern.empty(True).shape
    for idx in np.ndindex(*batch_shape):
        np.testing.assert_allclose(folded[idx],
                                   pattern.fold(free[idx], free=True),
                                   **fold_tol)
    np.testing.assert_allclose(
        pattern._flatten_b(folded, batch_shape, True, None, ()), free,
        **flatten_tol)
    np.testing.assert_array_equal(
        pattern._flatten_b(folded, batch_shape, False, None, ()),
        folded.reshape(batch_shape + (-1,)))
    return folded
