"""Shared fixtures: the anchors (paragami, vittles), imported only if present,
and a seeded global generator for ``check_grads``.

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


def _anchor_fixture(name):
    """A session fixture giving the anchor ``name``, skipping without it."""
    @pytest.fixture(scope="session", name=name)
    def anchor():
        module = import_anchor(name)
        if module is None:
            pytest.skip("{} is not installed".format(name))
        return module
    anchor.__doc__ = "{}, imported after the numpy-2 shim.".format(name)
    return anchor


paragami = _anchor_fixture("paragami")
vittles = _anchor_fixture("vittles")


@pytest.fixture
def seeded_check_grads():
    """Seed numpy's global generator, from which ``check_grads`` draws its
    directions (restored afterwards), and restore refold's forward-mode
    linalg rules, which importing an anchor (paragami) replaces."""
    from refold.patterns import autograd_rules
    autograd_rules.register()
    state = numpy.random.get_state()
    numpy.random.seed(0)
    yield
    numpy.random.set_state(state)
