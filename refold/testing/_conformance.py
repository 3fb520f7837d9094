"""The whole pattern contract against one pattern: :func:`check_pattern`."""
from __future__ import annotations

import contextlib
import copy
import numbers
from typing import Any

import numpy as onp

from refold.patterns._checks import resolve_rng
from refold.patterns.base import Pattern
from refold.testing._compare import assert_folded_allclose
from refold.testing._jacobians import (
    check_flat_indices, check_grads_of_maps, check_jacobians, check_log_dets)
from refold.testing._properties import (
    Skip, check_copies, check_defaults, check_empty, check_empty_bool,
    check_json, check_random, check_round_trips, check_validate, expect,
    set_free_default)

__all__ = ["check_pattern"]


@contextlib.contextmanager
def _property(label, name):
    try:
        yield
    except Skip:
        pass
    except AssertionError as err:
        raise AssertionError("check_pattern({}): {} failed: {}".format(
            label, name, err)) from err
    except Exception as err:
        raise AssertionError("check_pattern({}): {} failed: raised {}: "
                             "{}".format(label, name, type(err).__name__,
                                         err)) from err


def _check_tolerance(value, name):
    if isinstance(value, (bool, onp.bool_)) or \
            not isinstance(value, (numbers.Real, onp.floating, onp.integer)):
        raise TypeError("{}: expected a non-negative number, got {!r}".format(
            name, value))
    if not (value >= 0 and onp.isfinite(value)):
        raise ValueError("{}: expected a finite non-negative number, got "
                         "{}".format(name, value))
    return float(value)


def check_pattern(pattern: Pattern, valid_value: Any = None, *, rng=0,
                  check_derivatives: bool = True, atol: float = 1e-8,
                  rtol: float = 1e-8) -> None:
    r"""Check that ``pattern`` keeps the whole pattern contract.

    Checked, each failing with an ``AssertionError`` that names the property:

    - for ``free`` in (True, False) and ``free_default`` in (None, True,
      False): ``flatten``/``fold`` are inverse (values and flat vectors),
      lengths agree with ``flat_length`` and ``flat_names``, an omitted
      ``free`` uses ``free_default`` (and raises when it is None), a
      standard-normal free vector folds to a valid value, outputs do not
      share memory with inputs and inputs are not changed;
    - ``empty(True)`` is valid and flattens both ways; ``empty(False)``
      flattens without validation; ``empty_bool`` flattens to booleans;
    - ``random(rng)`` is valid and reproducible with a seed;
    - ``validate_folded`` gives ``(True, '')`` for the valid value and
      ``(False, message)`` for garbage (None, strings, wrong shapes, NaN),
      never raising;
    - copies (``copy.deepcopy`` and a pickle round trip) are equal, hash
      equally and flatten equally (pickling is skipped for classes that
      cannot be pickled by reference, such as classes defined in a
      function);
    - ``to_json`` is standard JSON and, when every type in it is registered,
      reads back (by ``get_pattern_from_json`` and ``from_json``) as an
      equal pattern with the same ``free_default``;
    - ``flat_indices`` (free and not) for random boolean masks are exactly
      the selected flat positions and the free coordinates the selected
      entries depend on (the nonzero columns of autograd's Jacobian);
    - ``freeing_jacobian`` and ``unfreeing_jacobian`` equal autograd's
      Jacobians, as ``scipy.sparse`` matrices (``sparse=True``) and dense
      ``numpy.ndarray`` (``sparse=False``), and their product is the
      identity; checked at ``valid_value`` and at a random value;
    - the log-determinants equal ``slogdet`` of autograd's Jacobian; when
      the flat and free lengths differ, over the first linearly independent
      flat coordinates (the lower triangle of a symmetric matrix, all but
      one entry of a simplex). A ``NotImplementedError`` is accepted then;
    - with ``check_derivatives``, the derivatives of ``fold`` and
      ``flatten`` to second order in forward and reverse mode, by
      :func:`autograd.test_util.check_grads`, at a random value.

    Parameters
    ----------
    pattern : Pattern
        The pattern to check. It is not modified (variants with other
        ``free_default`` values are copies).
    valid_value : optional
        A valid folded value to check at; by default ``pattern.random(rng)``.
    rng : None, int or numpy.random.Generator, optional
        Source of the random values, masks and vectors used.
    check_derivatives : bool, optional
        Whether to run the (slower) finite-difference derivative checks.
    atol, rtol : float, optional
        Tolerances for round trips and Jacobians.

    Raises
    ------
    AssertionError
        If a property fails; the message starts with
        ``check_pattern(<class>): <property> failed``.
    TypeError, ValueError
        If the arguments are invalid (``valid_value`` not valid for
        ``pattern``, negative tolerances, ...).

    Examples
    --------
    >>> from refold import NumericArrayPattern
    >>> check_pattern(NumericArrayPattern((2, 3), lb=-1.0, ub=2.0))
    """
    if not isinstance(pattern, Pattern):
        raise TypeError("pattern: expected a refold Pattern, got {}".format(
            type(pattern).__name__))
    if not isinstance(check_derivatives, (bool, onp.bool_)):
        raise TypeError("check_derivatives: expected True or False, got "
                        "{!r}".format(check_derivatives))
    tol = dict(atol=_check_tolerance(atol, "atol"),
               rtol=_check_tolerance(rtol, "rtol"))
    gen = resolve_rng(rng)
    label = type(pattern).__name__
    pattern_before = copy.deepcopy(pattern)
    free_default_before = pattern.free_default

    if valid_value is None:
        with _property(label, "random()"):
            valid_value = pattern.random(rng=gen)
    else:
        try:
            ok, message = pattern.validate_folded(valid_value)
        except Exception as err:
            ok, message = False, "validate_folded raised {}: {}".format(
                type(err).__name__, err)
        if not ok:
            raise ValueError("valid_value: not a valid value of {}: {}".format(
                label, message))
    value_before = copy.deepcopy(valid_value)
    with _property(label, "random()"):
        random_value = pattern.random(rng=gen)

    for free_default in (None, True, False):
        with _property(label, "setting free_default={}".format(free_default)):
            variant = set_free_default(pattern, free_default)
        for free in (True, False):
            name = "fold/flatten round trip (free={}, free_default={})".format(
                free, free_default)
            with _property(label, name):
                check_round_trips(variant, valid_value, free,
                                  free_default is free, tol, gen)
        with _property(label, "free_default={}".format(free_default)):
            check_defaults(variant, valid_value, free_default)
        with _property(label, "copy and pickle (free_default={})".format(
                free_default)):
            check_copies(variant, valid_value)
        with _property(label, "JSON round trip (free_default={})".format(
                free_default)):
            check_json(variant, valid_value)

    checks = [("empty", lambda: check_empty(pattern, tol)),
              ("empty_bool", lambda: check_empty_bool(pattern)),
              ("random", lambda: check_random(pattern)),
              ("validate_folded", lambda: check_validate(pattern,
                                                         valid_value)),
              ("flat_indices", lambda: check_flat_indices(
                  pattern, random_value, gen))]
    for name, run in checks:
        with _property(label, name):
            run()
    for where, value in (("valid_value", valid_value),
                         ("a random value", random_value)):
        truth = None
        with _property(label, "Jacobians at " + where):
            truth = check_jacobians(pattern, value, tol)
        with _property(label, "log-determinants at " + where):
            check_log_dets(pattern, value, truth, tol)
    if check_derivatives:
        with _property(label, "derivatives (check_grads)"):
            check_grads_of_maps(pattern, random_value)

    with _property(label, "inputs unchanged"):
        assert_folded_allclose(valid_value, value_before, rtol=0, atol=0,
                               equal_nan=True, name="valid_value")
        expect(pattern == pattern_before and
               pattern.free_default == free_default_before,
               "the pattern itself was changed")
