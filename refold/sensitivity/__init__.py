"""Sensitivity: how an optimum moves when a hyperparameter moves.

vittles 0.173's public names, with refold's solvers and checks. This
subpackage may import ``refold.patterns``; it never imports ``refold.models``.

Every public name loads its module on first use (PEP 562), so that
``import refold`` costs little more than numpy, scipy and autograd.
"""
import importlib

# These two share their module's name: importing the module (as other
# modules do) would bind the package attribute to the module, so the
# functions are bound here, once their modules are loaded.
from refold.sensitivity.refit import refit
from refold.sensitivity.sparse_hessian import sparse_hessian

__all__ = [
    "HyperparameterSensitivityLinearApproximation",
    "EstimatingEquationLinearApproximation", "CrossSensitivity",
    "OptimumChecker", "OptimumReport", "check_optimum", "validate_optimum",
    "refit", "SparseBlockHessian", "sparse_hessian", "get_hvp",
    "get_batch_hvp", "make_hvp_at", "dense_hessian", "ArrowheadHessian",
    "LinearSolver", "RefoldWarning", "as_solver", "check_hessian",
    "get_cg_solver", "get_cholesky_solver", "get_dense_cholesky_solver",
    "get_lu_solver", "get_solver", "get_sparse_cholesky_solver",
    "ParametricSensitivityTaylorExpansion", "TaylorSeriesWarning",
    "TaylorSeriesReport", "TaylorTerm", "WeightSensitivity",
    "DropDataResult", "RefitCheck", "hessian_sparsity", "jacobian_sparsity",
    "register_sparsity_rule", "SparsityWarning", "HessianStructure",
    "hessian_structure",
    "check_nonsingular", "hessian_covariance", "per_observation_gradients",
    "sandwich_covariance", "standard_error_fun", "DropSearchResult",
    "DropPrediction", "greedy_drop", "exhaustive_drop", "predict_drop",
    "OLSDrop", "EstimatingEquationWeights", "moment_sandwich_covariance",
    "HessianError", "SecondDerivativeError",
]

#: Where each public name lives; every name (and every submodule) is
#: loaded on first use, so ``import refold`` pays only for what is used.
_HOMES = {
    "ArrowheadHessian": "arrowhead",
    "CrossSensitivity": "cross",
    "DropDataResult": "data_weights",
    "DropPrediction": "drop_data",
    "DropSearchResult": "drop_data",
    "EstimatingEquationLinearApproximation": "linear_approx",
    "EstimatingEquationWeights": "ee_weights",
    "HessianError": "errors",
    "HessianStructure": "structure",
    "HyperparameterSensitivityLinearApproximation": "linear_approx",
    "LinearSolver": "solvers",
    "OLSDrop": "ols_drop",
    "OptimumChecker": "cross",
    "OptimumReport": "optimum",
    "ParametricSensitivityTaylorExpansion": "taylor",
    "RefitCheck": "data_weights",
    "RefoldWarning": "solvers",
    "SecondDerivativeError": "errors",
    "SparseBlockHessian": "sparse_hessian",
    "SparsityWarning": "sparsity",
    "TaylorSeriesReport": "taylor",
    "TaylorSeriesWarning": "taylor",
    "TaylorTerm": "taylor",
    "WeightSensitivity": "data_weights",
    "as_solver": "solvers",
    "check_hessian": "solvers",
    "check_nonsingular": "standard_errors",
    "check_optimum": "optimum",
    "dense_hessian": "hvp",
    "exhaustive_drop": "drop_data",
    "get_batch_hvp": "hvp",
    "get_cg_solver": "solvers",
    "get_cholesky_solver": "solvers",
    "get_dense_cholesky_solver": "solvers",
    "get_hvp": "hvp",
    "get_lu_solver": "solvers",
    "get_solver": "solvers",
    "get_sparse_cholesky_solver": "solvers",
    "greedy_drop": "drop_data",
    "hessian_covariance": "standard_errors",
    "hessian_sparsity": "sparsity",
    "hessian_structure": "structure",
    "jacobian_sparsity": "sparsity",
    "make_hvp_at": "hvp",
    "moment_sandwich_covariance": "standard_errors",
    "per_observation_gradients": "standard_errors",
    "predict_drop": "drop_data",
    "refit": "refit",
    "register_sparsity_rule": "sparsity",
    "sandwich_covariance": "standard_errors",
    "sparse_hessian": "sparse_hessian",
    "standard_error_fun": "standard_errors",
    "validate_optimum": "optimum",
}


def __getattr__(name):
    if name in _HOMES:
        module = importlib.import_module(f"refold.sensitivity.{_HOMES[name]}")
        value = getattr(module, name)
        globals()[name] = value
        return value
    try:
        return importlib.import_module(f"refold.sensitivity.{name}")
    except ModuleNotFoundError:
        raise AttributeError(
            f"module 'refold.sensitivity' has no attribute {name!r}") from None


def __dir__():
    return sorted(list(globals()) + list(_HOMES))
