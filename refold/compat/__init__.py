"""paragami's and vittles' module trees, re-exporting refold.

``from refold.compat import paragami, vittles`` ports a file that imports
``paragami``/``vittles`` and their submodules in one line:
``paragami.base_patterns.Pattern``,
``paragami.autograd_supplement_lib.grouped_sum``,
``vittles.sensitivity_lib.HyperparameterSensitivityLinearApproximation``, ...
all resolve to refold's objects (the same objects as ``refold.<name>``).
``import refold.compat.paragami.pattern_containers`` and
``from refold.compat.vittles.solver_lib import get_cholesky_solver`` work
too. Nothing here defines behaviour: see :doc:`/porting` for the
differences from paragami 0.42 and vittles 0.173.
"""
from refold.compat import paragami, vittles  # noqa: F401

__all__ = ["paragami", "vittles"]
