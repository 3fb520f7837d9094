r"""Forward-mode rules for ``autograd.scipy.special`` and ``autograd.scipy.stats``.

autograd 1.9 defines reverse-mode rules (vjps) for its scipy wrappers but
forward-mode rules (jvps) only for ``logsumexp``, so forward-mode
derivatives, forward-over-reverse Hessian-vector products, cross Hessians
and Taylor series of an objective using ``gammaln``, ``digamma``,
``expit``, ``norm.logpdf``, a Dirichlet log density, ... fail with
``NotImplementedError: JVP of gammaln``. paragami 0.42 registered jvps for
``gammaln``, ``digamma``/``psi``, ``polygamma``, ``gamma``, ``rgamma`` and
``gammasgn``; refold registers them for every differentiable function below.

**Elementwise functions.** For a function acting entry by entry (with numpy
broadcasting) the derivative in one argument is diagonal, so the
forward-mode product in a direction :math:`\dot a` equals the reverse-mode
product with the cotangent :math:`\dot a` broadcast to the output's shape:
:math:`\dot f = \partial_a f \odot \dot a = \bar a` for :math:`\bar f = \dot
a`. Each jvp here is autograd's own vjp formula for that argument, evaluated
with the argument broadcast to the output's shape (so nothing is summed) and
applied to the broadcast tangent. The formulas are written with autograd
operations (``psi``, ``polygamma``, ``pdf``, ...), so every mix of modes
composes to any order. The functions covered:

* ``autograd.scipy.special``: ``beta``, ``betaln``, ``betainc`` (in ``x``),
  ``gamma``, ``gammaln``, ``rgamma``, ``gammasgn`` (zero), ``psi``,
  ``digamma``, ``polygamma`` (in ``x``), ``multigammaln`` (in ``a``),
  ``gammainc``, ``gammaincc`` (in ``x``), ``erf``, ``erfc``, ``erfinv``,
  ``erfcinv``, ``logit``, ``expit``, ``j0``, ``j1``, ``y0``, ``y1``,
  ``jn``, ``yn``, ``i0``, ``i1``, ``iv``, ``ive`` (in ``x``);
* ``autograd.scipy.stats``: ``norm`` (``pdf``, ``cdf``, ``sf``, ``logpdf``,
  ``logcdf``, ``logsf``), ``gamma``, ``beta``, ``chi2``, ``t`` and
  ``poisson`` (in every argument autograd differentiates).

**Dirichlet.** ``dirichlet.logpdf(x, alpha)`` (and ``pdf``) reduce over the
simplex axis, so their jvps are written out: :math:`\dot\ell =
\sum_k (\alpha_k - 1)\dot x_k / x_k + \sum_k(\psi(\textstyle\sum_j\alpha_j) -
\psi(\alpha_k) + \log x_k)\dot\alpha_k` (times the density for ``pdf``).

Not covered (autograd has no forward rule and refold adds none):
``multivariate_normal`` (write its log density with ``autograd.numpy``;
refold's linalg rules make that forward-differentiable), ``solve_banded``,
``convolve`` and ``odeint``.

**Registration is lazy.** Importing ``autograd.scipy`` imports
``scipy.stats`` and ``scipy.integrate`` (about half a second), so ``import
refold`` does not import it. If ``autograd.scipy`` is already imported the
rules are registered when refold is imported; otherwise a one-shot import
hook registers them right after ``autograd.scipy`` is first imported (which
any code using these functions does). :func:`register` registers them now
(it imports ``autograd.scipy``); it is idempotent.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import threading
from typing import Callable

__all__ = ["register"]

_PACKAGE = "autograd.scipy"

_SPECIAL = {
    "beta": (0, 1), "betaln": (0, 1), "betainc": (2,),
    "gamma": (0,), "gammaln": (0,), "rgamma": (0,), "gammasgn": (0,),
    "psi": (0,), "digamma": (0,), "polygamma": (1,), "multigammaln": (0,),
    "gammainc": (1,), "gammaincc": (1,),
    "erf": (0,), "erfc": (0,), "erfinv": (0,), "erfcinv": (0,),
    "logit": (0,), "expit": (0,),
    "j0": (0,), "j1": (0,), "y0": (0,), "y1": (0,), "jn": (1,), "yn": (1,),
    "i0": (0,), "i1": (0,), "iv": (1,), "ive": (1,),
}
_STATS = {
    "norm": {name: (0, 1, 2) for name in
             ("pdf", "cdf", "sf", "logpdf", "logcdf", "logsf")},
    "gamma": {"pdf": (0, 1), "logpdf": (0, 1), "cdf": (0,)},
    "beta": {"pdf": (0, 1, 2), "logpdf": (0, 1, 2), "cdf": (0,)},
    "chi2": {"pdf": (0,), "logpdf": (0,), "cdf": (0,)},
    "t": {"pdf": (0, 1, 2, 3), "logpdf": (0, 1, 2, 3), "cdf": (0, 2, 3),
          "logcdf": (0, 2, 3)},
    "poisson": {"pmf": (1,), "logpmf": (1,), "cdf": (1,)},
}

_lock = threading.Lock()
_registered = False


def _elementwise_jvp(fun: Callable, argnum: int) -> Callable:
    """The jvp of an elementwise primitive in ``argnum``, from its vjp."""
    from autograd.core import primitive_vjps
    import autograd.numpy as anp

    vjp_argnums = primitive_vjps[fun]

    def jvp(g, ans, *args, **kwargs):
        shape = anp.shape(ans)
        args = list(args)
        args[argnum] = anp.broadcast_to(args[argnum], shape)
        vjp = vjp_argnums((argnum,), ans, tuple(args), kwargs)
        return vjp(anp.broadcast_to(g, shape))[0]

    return jvp


def _register_elementwise(module, table) -> None:
    from autograd.core import primitive_vjps
    from autograd.extend import defjvp

    for name, argnums in table.items():
        fun = getattr(module, name, None)
        if fun is None or fun not in primitive_vjps:
            continue
        defjvp(fun, *[_elementwise_jvp(fun, i) for i in argnums],
               argnums=argnums)


def _register_dirichlet(dirichlet) -> None:
    import autograd.numpy as anp
    from autograd.extend import defjvp
    from autograd.scipy.special import digamma

    def alpha_col(alpha, x):
        return anp.reshape(alpha, (-1,) + (1,) * (anp.ndim(x) - 1))

    def dlog_dx(g, x, alpha):
        return anp.sum(g * (alpha_col(alpha, x) - 1.0) / x, axis=0)

    def dlog_dalpha(g, x, alpha):
        a = alpha_col(alpha, x)
        return anp.sum(alpha_col(g, x) * (digamma(anp.sum(alpha)) -
                                          digamma(a) + anp.log(x)), axis=0)

    defjvp(dirichlet.logpdf,
           lambda g, ans, x, alpha: dlog_dx(g, x, alpha),
           lambda g, ans, x, alpha: dlog_dalpha(g, x, alpha))
    defjvp(dirichlet.pdf,
           lambda g, ans, x, alpha: ans * dlog_dx(g, x, alpha),
           lambda g, ans, x, alpha: ans * dlog_dalpha(g, x, alpha))


def register() -> None:
    """Register the forward-mode rules now (imports ``autograd.scipy``).

    Idempotent. Called automatically when ``autograd.scipy`` is imported
    after refold, or when refold is imported after it.
    """
    global _registered
    with _lock:
        if _registered:
            return
        _registered = True
    special = importlib.import_module(_PACKAGE + ".special")
    _register_elementwise(special, _SPECIAL)
    for name, table in _STATS.items():
        try:
            module = importlib.import_module(_PACKAGE + ".stats." + name)
        except ImportError:  # pragma: no cover - an autograd without it
            continue
        _register_elementwise(module, table)
    try:
        dirichlet = importlib.import_module(_PACKAGE + ".stats.dirichlet")
    except ImportError:  # pragma: no cover
        return
    _register_dirichlet(dirichlet)


# ----------------------------------------------------------------------
# The one-shot import hook.

class _RegisteringLoader(importlib.abc.Loader):
    """Runs the real loader of ``autograd.scipy``, then :func:`register`."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module) -> None:
        module.__spec__.loader = self._inner
        module.__loader__ = self._inner
        self._inner.exec_module(module)
        register()

    def __getattr__(self, name):
        return getattr(self._inner, name)


class _RegisterOnImport(importlib.abc.MetaPathFinder):
    """Wraps the loader of ``autograd.scipy`` on its first import."""

    def find_spec(self, fullname, path, target=None):
        if fullname != _PACKAGE:
            return None
        _remove_hook()
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisteringLoader(spec.loader)
        return spec


_HOOK = _RegisterOnImport()


def _remove_hook() -> None:
    try:
        sys.meta_path.remove(_HOOK)
    except ValueError:
        pass


def _register_when_imported() -> None:
    """Register now if ``autograd.scipy`` is imported, else on its import."""
    if _PACKAGE in sys.modules:
        register()
    elif _HOOK not in sys.meta_path:
        sys.meta_path.insert(0, _HOOK)


_register_when_imported()
