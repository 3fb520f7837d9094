"""``paragami.optimization_lib``: :mod:`refold.patterns.optimization`,
:mod:`refold.patterns.preconditioning` and
:func:`~refold.patterns.preconditioner_funcs.transform_eigenspace`."""
from refold.patterns.optimization import (  # noqa: F401
    OptimizationObjective, PreconditionedFunction)
from refold.patterns.preconditioner_funcs import (  # noqa: F401
    transform_eigenspace)
from refold.patterns.preconditioning import truncate_eigenvalues  # noqa
from refold.patterns.autodiff_primitives import (  # noqa: F401
    get_differentiable_solver, get_sparse_product)

__all__ = ["truncate_eigenvalues", "transform_eigenspace",
           "PreconditionedFunction", "OptimizationObjective"]
