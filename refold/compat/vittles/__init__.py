"""vittles 0.173's top level and module tree, re-exporting refold."""
from refold.models.lr_covariance import LinearResponseCovariances  # noqa
from refold.sensitivity.linear_approx import (  # noqa: F401
    HyperparameterSensitivityLinearApproximation)
from refold.sensitivity.sparse_hessian import SparseBlockHessian  # noqa
from refold.sensitivity.taylor import (  # noqa: F401
    ParametricSensitivityTaylorExpansion)
from refold.compat.vittles import (  # noqa: F401
    bivariate_sensitivity_lib, lr_cov_lib, sensitivity_lib, solver_lib,
    sparse_hessian_lib)
