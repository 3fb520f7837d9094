"""Item 3: forward-mode rules for autograd.scipy.special / .stats, checked
with autograd's check_grads (finite differences) in both modes to order 2,
registered lazily, and used by the sensitivity classes on a Dirichlet prior.
"""
import os
import subprocess
import sys
import textwrap

import autograd.numpy as anp
import autograd.scipy.special as sps
import autograd.scipy.stats as stats
import numpy as np
import pytest
from autograd.test_util import check_grads

import refold

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
MODES = ["fwd", "rev"]
X = np.array([0.35, 1.3, 2.7])


@pytest.mark.filterwarnings("ignore:Output seems independent")  # gammasgn
@pytest.mark.parametrize("name", [
    "gammaln", "digamma", "psi", "gamma", "rgamma", "gammasgn", "expit",
    "logit", "erf", "erfc", "i0", "i1", "j0", "j1", "y0", "y1"])
def test_unary_special_functions(name):
    fun = getattr(sps, name)
    x = X / 3.0 if name in ("logit",) else X
    check_grads(fun, modes=MODES, order=2)(x)


def test_special_functions_with_extra_arguments():
    check_grads(lambda x: sps.polygamma(1, x), modes=MODES, order=2)(X)
    check_grads(lambda x: sps.multigammaln(x + 2.0, 3), modes=MODES,
                order=2)(X)
    check_grads(lambda a, b: sps.beta(a, b) + sps.betaln(a, b), modes=MODES,
                order=2)(X, 1.7)                    # broadcast b
    check_grads(lambda x: sps.betainc(1.5, 2.0, x), modes=MODES,
                order=2)(X / 3.0)
    check_grads(lambda x: sps.gammainc(1.5, x) + sps.gammaincc(2.5, x),
                modes=MODES, order=2)(X)
    check_grads(lambda x: sps.erfinv(x) + sps.erfcinv(x + 0.5),
                modes=MODES, order=2)(X / 4.0)
    check_grads(lambda x: sps.iv(1.5, x) + sps.ive(0.5, x) + sps.jn(2, x)
                + sps.yn(1, x), modes=MODES, order=2)(X)


def test_stats_functions():
    loc, scale = 0.2, 1.3
    check_grads(lambda x, m, s: stats.norm.logpdf(x, m, s)
                + stats.norm.logcdf(x, m, s) + stats.norm.logsf(x, m, s)
                + stats.norm.pdf(x, m, s) + stats.norm.cdf(x, m, s),
                modes=MODES, order=2)(X - 1.0, loc, scale)
    check_grads(lambda x, a: stats.gamma.logpdf(x, a) + stats.beta.logpdf(
        x / 3.0, a, 2.0) + stats.t.logpdf(x, a, 0.1, 1.2), modes=MODES,
        order=2)(X, np.array([1.5, 2.0, 3.0]))
    check_grads(lambda mu: stats.poisson.logpmf(np.array([0, 2, 5]), mu),
                modes=MODES, order=2)(X)

    def softmax(z):
        return anp.exp(z) / anp.sum(anp.exp(z))
    check_grads(lambda z, a: stats.dirichlet.logpdf(softmax(z), a)
                + stats.dirichlet.pdf(softmax(z), a), modes=MODES,
                order=2)(np.array([0.2, -0.3, 0.5]), np.array([1.5, 2., 3.]))


def test_registration_is_lazy():
    """Loaded on its own, the module does not import autograd.scipy; the
    rules appear when autograd.scipy is first imported."""
    code = textwrap.dedent("""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location(
            "special_rules", {path!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert "autograd.scipy" not in sys.modules
        import autograd, numpy as np
        import autograd.scipy.special as sps
        out = autograd.make_jvp(sps.gammaln)(np.array([2.0]))(np.ones(1))[1]
        print(float(out[0]))
    """).format(path=os.path.join(ROOT, "refold", "patterns",
                                  "special_rules.py"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True, cwd=ROOT)
    assert abs(float(out.stdout) - (1 - np.euler_gamma)) < 1e-12


def _dirichlet_objective(theta, alpha):
    # A Dirichlet prior with concentration alpha on softmax weights and a
    # multinomial likelihood: the kind of prior that needs gammaln's jvp.
    counts = np.array([3.0, 7.0, 2.0])
    z = anp.concatenate([anp.zeros(1), theta])
    logp = z - anp.log(anp.sum(anp.exp(z)))
    prior = sps.gammaln(anp.sum(alpha)) - anp.sum(sps.gammaln(alpha)) + \
        anp.sum((alpha - 1.0) * logp)
    return -(anp.dot(counts, logp) + prior)


def _dirichlet_optimum(alpha):
    # Closed form: the posterior mode has p_k proportional to n_k + a_k - 1.
    counts = np.array([3.0, 7.0, 2.0])
    p = counts + alpha - 1.0
    return np.log(p[1:] / p[0])


def test_sensitivity_through_gammaln_matches_the_closed_form():
    alpha = np.array([2.0, 1.5, 3.0])
    opt = _dirichlet_optimum(alpha)
    sens = refold.HyperparameterSensitivityLinearApproximation(
        _dirichlet_objective, opt, alpha)
    step = 1e-6
    fd = np.stack([(_dirichlet_optimum(alpha + step * e)
                    - _dirichlet_optimum(alpha - step * e)) / (2 * step)
                   for e in np.eye(3)], axis=1)
    np.testing.assert_allclose(sens.get_dopt_dhyper(), fd, rtol=1e-6,
                               atol=1e-8)
    taylor = refold.ParametricSensitivityTaylorExpansion.optimization_objective(
        _dirichlet_objective, opt, alpha, order=2)
    new = alpha + np.array([0.1, -0.05, 0.2])
    err1 = np.abs(sens.predict_opt_par_from_hyper_par(new)
                  - _dirichlet_optimum(new)).max()
    err2 = np.abs(taylor.evaluate_taylor_series(new)
                  - _dirichlet_optimum(new)).max()
    assert err2 < err1 / 5


def test_dirichlet_sensitivity_agrees_with_vittles(vittles):
    alpha = np.array([2.0, 1.5, 3.0])
    opt = _dirichlet_optimum(alpha)
    theirs = vittles.HyperparameterSensitivityLinearApproximation(
        _dirichlet_objective, opt, alpha)
    ours = refold.HyperparameterSensitivityLinearApproximation(
        _dirichlet_objective, opt, alpha)
    np.testing.assert_allclose(ours.get_dopt_dhyper(),
                               theirs.get_dopt_dhyper(), rtol=1e-10)
