"""refold: structured parameters, sensitivity of optima, honest covariances.

refold keeps the public names of paragami 0.42 and vittles 0.173, so
``import refold as paragami`` (or ``as vittles``) ports existing code.
"""
from refold.patterns import *  # noqa: F401,F403
from refold.patterns import __all__ as _patterns_all

__version__ = "0.1.0"
__all__ = list(_patterns_all)
