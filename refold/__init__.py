"""refold: structured parameters, sensitivity of optima, honest covariances.

refold keeps the public names of paragami 0.42 and vittles 0.173, so
``import refold as paragami`` (or ``as vittles``) ports existing code.
"""
from refold.patterns import *  # noqa: F401,F403
from refold.patterns import __all__ as _patterns_all
import refold.sensitivity as _sensitivity
from refold.sensitivity import __all__ as _sensitivity_all

# The sensitivity names, vittles' module names (``refold.solver_lib``,
# ``refold.bivariate_sensitivity_lib``, ``refold.sensitivity_lib``) and the
# models layer load on first use (below): ``import refold`` costs little
# more than numpy, scipy and autograd.  The full module trees are
# refold.compat.paragami / refold.compat.vittles.

__version__ = "0.1.0"
__all__ = list(_patterns_all) + list(_sensitivity_all) + [
    "LinearResponseCovariances", "EMCovariance"]

_LAZY = {"LinearResponseCovariances": "refold.models",
         "EMCovariance": "refold.models",
         "models": "refold.models",
         "solver_lib": "refold.sensitivity.solvers",
         "bivariate_sensitivity_lib": "refold.sensitivity.cross",
         # vittles' module name (the module tree is refold.compat.vittles)
         "sensitivity_lib": "refold.compat.vittles.sensitivity_lib"}
_LAZY_MODULES = ("models", "solver_lib", "bivariate_sensitivity_lib",
                 "sensitivity_lib")


def __getattr__(name):
    # The models layer loads on first use: ``import refold`` stays close to
    # the cost of numpy + scipy + autograd.
    if name in _sensitivity_all:
        return getattr(_sensitivity, name)
    if name in _LAZY:
        import importlib
        module = importlib.import_module(_LAZY[name])
        return module if name in _LAZY_MODULES else getattr(module, name)
    raise AttributeError(f"module 'refold' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY)
                  + list(_sensitivity_all))
