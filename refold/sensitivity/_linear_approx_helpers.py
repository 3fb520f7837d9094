"""Helpers of the linear approximations (private): the cross Jacobian
and its checks, and the description of the base point in messages."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

import numpy as np
import scipy.sparse as sps

from refold.sensitivity._base_point import BasePointRecord
from refold.sensitivity._checks import user_call
from refold.sensitivity.jacobian_modes import jacobian_matrix


def _as_cross_matrix(value: Any, name: str, shape: tuple) -> np.ndarray:
    if sps.issparse(value):
        value = value.toarray()
    arr = np.asarray(value)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number) \
            or np.iscomplexobj(arr):
        raise TypeError(f"{name} must be a real numeric array; got dtype "
                        f"{arr.dtype}")
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape} (length of the "
                         f"parameter, length of the hyperparameter); got "
                         f"shape {arr.shape}")
    arr = np.array(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite; it has NaN or inf entries")
    return arr


def _cross_jacobian(vec_fun: Callable, par: np.ndarray, hyper: np.ndarray,
                    name: str, record: Optional[BasePointRecord] = None
                    ) -> np.ndarray:
    r"""``d vec_fun(par, h) / dh`` at ``hyper`` (shape ``(D, M)``).

    ``vec_fun`` is the gradient of the objective (or the estimating
    equation).  From ``record`` (the objective recorded at the base point)
    when given: one sweep of its graph per hyperparameter coordinate.
    Otherwise ``M`` forward passes when ``M <= D``, else one recorded
    evaluation and ``D`` reverse sweeps
    (:func:`~refold.sensitivity.jacobian_modes.jacobian_matrix`).
    """
    if record is not None:
        cross = record.cross()
    else:
        cross = jacobian_matrix(vec_fun, (par, hyper), argnum=1,
                                out_size=par.shape[0])
    if cross.shape != (par.shape[0], hyper.shape[0]):
        raise ValueError(f"{name}: the differentiated function returns "
                         f"{cross.shape[0]} values; expected one per "
                         f"parameter ({par.shape[0]})")
    if not np.all(np.isfinite(cross)):
        raise ValueError(f"{name} (computed by automatic differentiation) is "
                         f"not finite at the base values")
    return cross


def objective_residual(fun: Callable, grad: Callable, names: Mapping,
                       par: np.ndarray, hyper: np.ndarray,
                       record: Optional[BasePointRecord] = None
                       ) -> np.ndarray:
    """The gradient at the base point, from ``record`` when given; without
    it, ``fun`` is evaluated first so that a non-scalar value or an error
    inside it is reported naming ``objective_fun`` and the point."""
    if record is not None:
        return record.gradient
    value = np.asarray(user_call(fun, "objective_fun",
                                 _where(names, par, hyper), par, hyper))
    if value.size != 1 or not np.issubdtype(value.dtype, np.number):
        raise ValueError(
            f"objective_fun must return a scalar; at ({names['par']}, "
            f"{names['hyper']}) it returned an array of shape "
            f"{value.shape}")
    return np.asarray(grad(par, hyper), dtype=float)


def _where(names: Mapping, par: np.ndarray, hyper: np.ndarray) -> str:
    return (f"at ({names['par']} of shape {par.shape}, {names['hyper']} of "
            f"shape {hyper.shape})")


def _scalar_valued(fun: Callable, name: str) -> Callable:
    """``fun`` with its value checked to be a scalar (so that a vector
    never reaches autograd's ``grad``, whose error would not name it)."""
    def checked(par, hyper):
        value = fun(par, hyper)
        if np.size(value) != 1:
            raise ValueError(f"{name} must return a scalar; got an array of "
                             f"shape {np.shape(value)}")
        return value
    return checked

