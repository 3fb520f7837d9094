"""``vittles.solver_lib``: :mod:`refold.sensitivity.solvers`."""
from refold.sensitivity.solvers import (  # noqa: F401
    get_cg_solver, get_cholesky_solver, get_dense_cholesky_solver,
    get_sparse_cholesky_solver)

__all__ = ["get_dense_cholesky_solver", "get_sparse_cholesky_solver",
           "get_cholesky_solver", "get_cg_solver"]
