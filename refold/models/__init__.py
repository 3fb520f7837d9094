"""Models: honest covariances from point estimates, and worked examples.

- :class:`LinearResponseCovariances` (vittles' name): LR covariances
  J H^-1 J^T for variational Bayes and MAP, with structure-aware solvers.
- :class:`EMCovariance`: the EM "marginal-Hessian fix", the covariance of EM
  estimates from the Schur complement of the joint EM objective's Hessian.
- Worked models, one module each with ``simulate`` and ``fit``:
  :mod:`~refold.models.neyman_scott`, :mod:`~refold.models.gaussian_mixture`,
  :mod:`~refold.models.mixed_model`, :mod:`~refold.models.logistic_glmm`.

This subpackage may import ``refold.patterns`` and ``refold.sensitivity``;
nothing imports it.
"""
import importlib

from refold.models.em_covariance import (
    EMCovariance, infer_eta_blocks, log_simplex)
from refold.models.lr_covariance import (
    LinearResponseCovariances, LRCovarianceBlocks, MomentJacobianColouring,
    colour_moment_jacobian)

__all__ = [
    "LinearResponseCovariances", "LRCovarianceBlocks",
    "MomentJacobianColouring", "colour_moment_jacobian", "EMCovariance",
    "infer_eta_blocks", "log_simplex", "neyman_scott", "gaussian_mixture",
    "mixed_model", "logistic_glmm",
]

# The worked models load on first use (``refold.models.gaussian_mixture``
# or ``from refold.models import logistic_glmm``), so ``import refold``
# does not pay for scipy.stats and scipy.special.
_WORKED_MODELS = ("neyman_scott", "gaussian_mixture", "mixed_model",
                  "logistic_glmm")


def __getattr__(name):
    if name in _WORKED_MODELS:
        return importlib.import_module(f"refold.models.{name}")
    raise AttributeError(f"module 'refold.models' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_WORKED_MODELS))
