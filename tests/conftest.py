"""Shared fixtures: the anchors (paragami, vittles), imported only if present.

paragami 0.42 and vittles 0.173 use ``numpy.product``, which numpy 2 removed;
the fixtures restore it before importing them and skip the test when they are
not installed (``pip install -e ".[bench]"`` installs them).
"""
import importlib

import numpy
import pytest


def _shim_numpy():
    import autograd.numpy as anp
    if not hasattr(numpy, "product"):
        numpy.product = numpy.prod
    if not hasattr(anp, "product"):
        anp.product = anp.prod


def import_anchor(name):
    """Import an anchor package after the numpy-2 shim, or return None."""
    _shim_numpy()
    try:
        module = importlib.import_module(name)
    except ImportError:
        return None
    # paragami's import replaces some of refold's forward-mode linalg rules
    # with 2-d-only versions; put refold's back.
    from refold.patterns import autograd_rules
    autograd_rules.register()
    return module


@pytest.fixture(scope="session")
def paragami():
    module = import_anchor("paragami")
    if module is None:
        pytest.skip("paragami is not installed")
    return module


@pytest.fixture(scope="session")
def vittles():
    module = import_anchor("vittles")
    if module is None:
        pytest.skip("vittles is not installed")
    return module
