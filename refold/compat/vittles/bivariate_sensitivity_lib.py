"""``vittles.bivariate_sensitivity_lib``: :mod:`refold.sensitivity.cross`."""
from refold.sensitivity.cross import (  # noqa: F401
    CrossSensitivity, OptimumChecker)

__all__ = ["CrossSensitivity", "OptimumChecker"]
