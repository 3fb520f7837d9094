r"""A random-effects logistic regression whose groups have 2 or 3 random
effects: an arrowhead Hessian with local blocks of unequal sizes.

MAP objective, hyperparameter the log prior precision :math:`\epsilon` of
the random effects::

    y_n ~ Bernoulli(sigmoid(x_n' beta + z_n' u_{g_n})),
    u_t ~ N(0, e^{-eps} I),  beta ~ N(0, 10^2 I),

with 14 fixed effects (the globals), 3,000 groups with a random intercept
and one random slope (2 locals each) and 2,000 groups with an intercept and
two slopes (3 locals each): D = 14 + 6,000 + 6,000 = 12,014, 8 rows per
group (40,000 rows).  Free vector: ``[beta (14), u of the 2-groups (row by
row), u of the 3-groups]``.  Not a benchmark itself.
"""
import autograd
import autograd.numpy as np
import numpy as onp
import scipy.optimize

import refold

N_FIXED = 14
GROUPS = {2: 3000, 3: 2000}          # random effects per group: groups
ROWS_PER_GROUP = 8


def ragged_problem(seed: int = 0):
    """``(objective, opt, h0)``: the objective ``f(par, h)``, its optimum
    at ``h0`` (Newton-CG with exact Hessian-vector products) and ``h0``."""
    rng = onp.random.default_rng(seed)
    parts = []
    for m, t in GROUPS.items():
        n = t * ROWS_PER_GROUP
        group = onp.repeat(onp.arange(t), ROWS_PER_GROUP)
        x = rng.normal(size=(n, N_FIXED)) / onp.sqrt(N_FIXED)
        z = onp.column_stack([onp.ones(n), rng.normal(size=(n, m - 1))])
        u = rng.normal(size=(t, m)) * 0.7
        eta = x @ rng.normal(size=N_FIXED) + onp.sum(u[group] * z, axis=1)
        y = (rng.uniform(size=n) < 1 / (1 + onp.exp(-eta))).astype(float)
        parts.append((m, t, group, x, z, y))

    def objective(par, h):
        beta, start, total = par[:N_FIXED], N_FIXED, 0.0
        for m, t, group, x, z, y in parts:       # two terms, vectorised
            u = np.reshape(par[start:start + m * t], (t, m))
            eta = np.dot(x, beta) + np.sum(u[group] * z, axis=1)
            total = total + np.sum(np.logaddexp(0.0, eta) - y * eta)
            total = total + 0.5 * np.exp(h[0]) * np.sum(u ** 2)
            start += m * t
        return total + 0.005 * np.sum(beta ** 2)

    dim = N_FIXED + sum(m * t for m, t in GROUPS.items())
    h0 = onp.array([0.0])
    opt = scipy.optimize.minimize(
        objective, onp.zeros(dim), args=(h0,), method="Newton-CG",
        jac=autograd.grad(objective), hessp=refold.get_hvp(objective),
        options=dict(xtol=1e-12, maxiter=200)).x
    return objective, opt, h0
