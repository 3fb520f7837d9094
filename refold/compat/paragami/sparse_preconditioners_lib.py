"""``paragami.sparse_preconditioners_lib``:
:func:`~refold.patterns.preconditioner_funcs.get_sym_matrix_inv_sqrt_funcs`
(no scikit-sparse needed)."""
from refold.patterns.preconditioner_funcs import (  # noqa: F401
    get_sym_matrix_inv_sqrt_funcs)

__all__ = ["get_sym_matrix_inv_sqrt_funcs"]
