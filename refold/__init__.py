"""refold: structured parameters, sensitivity of optima, honest covariances.

refold keeps the public names of paragami 0.42 and vittles 0.173, so
``import refold as paragami`` (or ``as vittles``) ports existing code.
"""
from refold.patterns import *  # noqa: F401,F403
from refold.patterns import __all__ as _patterns_all
from refold.sensitivity import *  # noqa: F401,F403
from refold.sensitivity import __all__ as _sensitivity_all
from refold.models import EMCovariance, LinearResponseCovariances  # noqa

# vittles' module names, so ``vittles.solver_lib.get_cholesky_solver``,
# ``vittles.sensitivity_lib.get_linear_function`` and
# ``vittles.bivariate_sensitivity_lib.CrossSensitivity`` port by import.
# The full module trees are refold.compat.paragami / refold.compat.vittles.
from refold.sensitivity import cross as bivariate_sensitivity_lib  # noqa
from refold.sensitivity import solvers as solver_lib  # noqa


def __getattr__(name):
    # ``refold.sensitivity_lib`` (vittles' module name), imported on first use.
    if name == "sensitivity_lib":
        from refold.compat.vittles import sensitivity_lib
        return sensitivity_lib
    raise AttributeError(f"module 'refold' has no attribute {name!r}")


__version__ = "0.1.0"
__all__ = list(_patterns_all) + list(_sensitivity_all) + [
    "LinearResponseCovariances", "EMCovariance"]
