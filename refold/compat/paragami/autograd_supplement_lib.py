"""``paragami.autograd_supplement_lib``:
:mod:`refold.patterns.autodiff_primitives`.

paragami's module also registered forward-mode rules for linalg and
``autograd.scipy.special`` on import; refold registers its own
(:mod:`refold.patterns.autograd_rules`, :mod:`refold.patterns.special_rules`)
when ``refold`` is imported.
"""
from refold.patterns.autodiff_primitives import (  # noqa: F401
    get_differentiable_solver, get_sparse_product, grouped_sum, replace)

__all__ = ["get_sparse_product", "get_differentiable_solver",
           "grouped_sum", "replace"]
