"""Sensitivity: how an optimum moves when a hyperparameter moves.

vittles 0.173's public names, with refold's solvers and checks. This
subpackage may import ``refold.patterns``; it never imports ``refold.models``.
"""
from refold.sensitivity.arrowhead import ArrowheadHessian
from refold.sensitivity.cross import CrossSensitivity, OptimumChecker
from refold.sensitivity.errors import HessianError, SecondDerivativeError
from refold.sensitivity.linear_approx import (
    EstimatingEquationLinearApproximation,
    HyperparameterSensitivityLinearApproximation)
from refold.sensitivity.optimum import (
    OptimumReport, check_optimum, validate_optimum)
from refold.sensitivity.hvp import (
    dense_hessian, get_batch_hvp, get_hvp, make_hvp_at)
from refold.sensitivity.refit import refit
from refold.sensitivity.solvers import (
    LinearSolver, RefoldWarning, as_solver, check_hessian, get_cg_solver,
    get_cholesky_solver, get_dense_cholesky_solver, get_lu_solver,
    get_solver, get_sparse_cholesky_solver)
from refold.sensitivity.sparse_hessian import (
    SparseBlockHessian, sparse_hessian)
from refold.sensitivity.sparsity import (
    SparsityWarning, hessian_sparsity, jacobian_sparsity,
    register_sparsity_rule)
from refold.sensitivity.structure import (
    HessianStructure, hessian_structure)
from refold.sensitivity.data_weights import (
    DropDataResult, RefitCheck, WeightSensitivity)
from refold.sensitivity.drop_data import (
    DropPrediction, DropSearchResult, exhaustive_drop, greedy_drop,
    predict_drop)
from refold.sensitivity.ee_weights import EstimatingEquationWeights
from refold.sensitivity.ols_drop import OLSDrop
from refold.sensitivity.standard_errors import (
    check_nonsingular, hessian_covariance, moment_sandwich_covariance,
    per_observation_gradients, sandwich_covariance, standard_error_fun)
from refold.sensitivity.taylor import (
    ParametricSensitivityTaylorExpansion, TaylorSeriesReport,
    TaylorSeriesWarning, TaylorTerm)

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
