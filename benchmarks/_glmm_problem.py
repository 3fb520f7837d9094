"""The logistic-GLMM sensitivity problem of the default-path benchmarks.

The mean-field VB negative ELBO of :mod:`refold.models.logistic_glmm`
(``GLMMObjective``: 2K + 4 = 14 globals, 2 locals per group), built as the
tutorial builds it, with the prior variance of ``beta`` as the
hyperparameter::

    kl(x, h) = objective(x) + (1/h - 1/V) * sum(beta_mean**2 + beta_var) / 2

(``V`` the prior variance the objective was built with, so at ``h = V`` the
optimum of ``kl`` is the fitted optimum).  Fitted once per shape and cached
in the temporary directory (not timed).
"""
import os
import tempfile

import autograd.numpy as np
import numpy as onp

from refold.models import logistic_glmm as lg

SHAPES = {1500: 18600, 5000: 61895}


def glmm_problem(n_groups: int, n_obs: int = None, seed: int = 0):
    """``(kl, opt, h0, objective)`` at ``n_groups`` groups."""
    n_obs = SHAPES.get(n_groups, 12 * n_groups) if n_obs is None else n_obs
    data = lg.simulate(n_obs, n_groups, 5, rng=seed)
    objective = lg.GLMMObjective(data)
    k = data.n_fixed
    prior_var = objective.prior.beta_var

    def kl(x, h):
        beta_mean, beta_var = x[:k], np.exp(x[k:2 * k])
        return objective(x) + 0.5 * (1.0 / h[0] - 1.0 / prior_var) * np.sum(
            beta_mean ** 2 + beta_var)

    cache = os.path.join(tempfile.gettempdir(),
                         f"refold_glmm_opt_{n_groups}_{n_obs}_{seed}.npy")
    if os.path.exists(cache):
        opt = onp.load(cache)
    else:
        opt = lg.fit(data, compute_lr=False).opt_par
        onp.save(cache, opt)
    return kl, opt, onp.array([prior_var]), objective
