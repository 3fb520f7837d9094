r"""Structured Hessian of a Criteo-shaped logistic GLMM KL objective.

Compares refold's :class:`refold.sensitivity.sparse_hessian.SparseBlockHessian`
(one Hessian-vector product per local coordinate and per global coordinate,
all sweeping one recorded gradient graph, vectorised assembly) with vittles
0.173's ``SparseBlockHessian`` on the same objective at the same point.

The objective is the mean-field VB KL divergence (up to a constant) of a
logistic GLMM with N = 61,895 rows, T = 5,000 random effects and 5 fixed
effects, in free coordinates::

    y_n ~ Bernoulli(sigmoid(x_n' beta + u_{g_n})),   u_t ~ N(mu, 1/tau),
    beta_k ~ N(0, 10^2),  mu ~ N(0, 10^2),  tau ~ Gamma(2, 2),
    q(beta_k) = N(., .), q(mu) = N(., .), q(log tau) = N(., .), q(u_t) = N(., .).

Free vector layout (D = 14 + 2 T = 10,014)::

    [beta mean (5), beta log-sd (5), mu mean, mu log-sd,
     log-tau mean, log-tau log-sd, u mean (T), u log-sd (T)]

so the 14 globals come first and group t's locals are ``14 + t`` and
``14 + T + t``.  ``E_q[log(1 + e^z)]`` uses Gauss-Hermite quadrature.  Group
effects enter through the gather ``u -> u[group]`` of
:func:`refold.models.logistic_glmm.make_group_ops` (a fixed CSR indicator
matrix, an autograd primitive whose adjoint is the group sum), so the
objective is vectorised and differentiable to any order in forward and
reverse mode.

Run with ``OPENBLAS_NUM_THREADS=1 python benchmarks/structured_hessian_bench.py``.
"""
import os
import sys
from typing import Callable, List, Tuple

import autograd.numpy as np
import numpy as onp
import scipy.sparse as sp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import best_time, import_vittles  # noqa: E402
from refold.models.logistic_glmm import make_group_ops  # noqa: E402

NUM_ROWS = 61895
NUM_GROUPS = 5000
NUM_FIXED = 5
NUM_GLOBALS = 2 * NUM_FIXED + 4
NUM_QUADRATURE = 6


def simulate(seed: int = 0, num_rows: int = NUM_ROWS,
             num_groups: int = NUM_GROUPS, num_fixed: int = NUM_FIXED):
    """Simulate a logistic GLMM data set (seeded)."""
    rng = onp.random.default_rng(seed)
    features = rng.normal(size=(num_rows, num_fixed))
    features[:, 0] = 1.0
    # Every group gets at least one row; the rest are spread unevenly.
    extra = rng.choice(num_groups, size=num_rows - num_groups,
                       p=rng.dirichlet(onp.full(num_groups, 2.0)))
    group = onp.sort(onp.concatenate([onp.arange(num_groups), extra]))
    beta_true = onp.linspace(-1.0, 1.0, num_fixed) * 0.5
    tau_true, mu_true = 4.0, -0.5
    u_true = mu_true + rng.normal(size=num_groups) / onp.sqrt(tau_true)
    logits = features @ beta_true + u_true[group]
    y = (rng.uniform(size=num_rows) < 1.0 / (1.0 + onp.exp(-logits)))
    return features, y.astype(float), group


def build_objective(seed: int = 0, num_rows: int = NUM_ROWS,
                    num_groups: int = NUM_GROUPS, num_fixed: int = NUM_FIXED
                    ) -> Tuple[Callable, onp.ndarray, onp.ndarray,
                               onp.ndarray]:
    r"""Build the Criteo-shaped GLMM KL objective.

    Parameters
    ----------
    seed : int
        Seed of the simulated data and of the evaluation point.
    num_rows, num_groups, num_fixed : int
        Problem shape (defaults: the Criteo shape).

    Returns
    -------
    fun : callable
        ``fun(free_par) -> float``, the KL divergence (up to a constant),
        differentiable by autograd in forward and reverse mode.
    x0 : numpy.ndarray, shape (2 * num_fixed + 4 + 2 * num_groups,)
        A plausible evaluation point (near the truth; NOT the optimum).
    global_inds : numpy.ndarray, shape (2 * num_fixed + 4,)
        Indices of the global coordinates.
    local_inds : numpy.ndarray, shape (num_groups, 2)
        Row t holds group t's (u mean, u log-sd) indices: the
        ``sparsity_array`` of a ``SparseBlockHessian``.
    """
    features, y, group = simulate(seed, num_rows, num_groups, num_fixed)
    features_sq = features ** 2
    nodes, weights = onp.polynomial.hermite.hermgauss(NUM_QUADRATURE)
    nodes = onp.sqrt(2.0) * nodes
    weights = weights / onp.sqrt(onp.pi)
    y_features = y @ features
    y_by_group = onp.bincount(group, weights=y, minlength=num_groups)
    num_global = 2 * num_fixed + 4
    gather, _ = make_group_ops(group, num_groups)
    ones_nodes = onp.ones(NUM_QUADRATURE)
    ones_rows = onp.ones(num_rows)
    prior_var_beta, prior_var_mu = 100.0, 100.0
    tau_shape, tau_rate = 2.0, 2.0

    def fun(free_par):
        beta_mean = free_par[:num_fixed]
        beta_logsd = free_par[num_fixed:2 * num_fixed]
        mu_mean = free_par[2 * num_fixed]
        mu_logsd = free_par[2 * num_fixed + 1]
        logtau_mean = free_par[2 * num_fixed + 2]
        logtau_logsd = free_par[2 * num_fixed + 3]
        u_mean = free_par[num_global:num_global + num_groups]
        u_logsd = free_par[num_global + num_groups:]

        beta_var = np.exp(2.0 * beta_logsd)
        u_var = np.exp(2.0 * u_logsd)
        mu_var = np.exp(2.0 * mu_logsd)
        logtau_var = np.exp(2.0 * logtau_logsd)
        e_tau = np.exp(logtau_mean + 0.5 * logtau_var)

        # Likelihood: E_q[y z - log(1 + e^z)], z = x'beta + u_g.
        z_mean = np.dot(features, beta_mean) + gather(u_mean)
        z_sd = np.sqrt(np.dot(features_sq, beta_var) + gather(u_var))
        z_nodes = np.outer(z_mean, ones_nodes) + np.outer(z_sd, nodes)
        e_log1p = np.dot(ones_rows, np.dot(np.logaddexp(0.0, z_nodes),
                                           weights))
        loglik = (np.dot(y_features, beta_mean) + np.dot(y_by_group, u_mean)
                  - e_log1p)

        # E_q[log N(u_t | mu, 1/tau)].
        e_sq = (u_mean - mu_mean) ** 2 + u_var + mu_var
        log_u = 0.5 * num_groups * logtau_mean - 0.5 * e_tau * np.sum(e_sq)

        # Priors.
        log_prior = (-0.5 * np.sum(beta_mean ** 2 + beta_var) / prior_var_beta
                     - 0.5 * (mu_mean ** 2 + mu_var) / prior_var_mu
                     + tau_shape * logtau_mean - tau_rate * e_tau)

        # Entropy of q (log-sd terms; log-tau entropy includes the
        # change of variable, which contributes logtau_mean).
        entropy = (np.sum(beta_logsd) + mu_logsd + logtau_logsd
                   + np.sum(u_logsd))
        return -(loglik + log_u + log_prior + entropy)

    rng = onp.random.default_rng(seed + 1)
    x0 = onp.concatenate([
        onp.linspace(-0.5, 0.5, num_fixed) + 0.05 * rng.normal(size=num_fixed),
        onp.full(num_fixed, -4.0) + 0.1 * rng.normal(size=num_fixed),
        [-0.5, -3.0, onp.log(4.0), -2.0],
        -0.5 + 0.5 * rng.normal(size=num_groups),
        onp.full(num_groups, -1.0) + 0.1 * rng.normal(size=num_groups)])
    global_inds = onp.arange(num_global)
    local_inds = num_global + onp.stack(
        [onp.arange(num_groups), num_groups + onp.arange(num_groups)], axis=1)
    return fun, x0, global_inds, local_inds


def arrowhead_pattern(global_inds: onp.ndarray, local_inds: onp.ndarray,
                      dim: int) -> sp.csr_matrix:
    """Boolean sparsity pattern of the arrowhead Hessian (vectorised)."""
    block_size = local_inds.shape[1]
    g = len(global_inds)
    everything = onp.arange(dim)
    rows = onp.concatenate([
        onp.repeat(global_inds, dim), onp.tile(everything, g),
        onp.repeat(local_inds, block_size, axis=1).ravel()])
    cols = onp.concatenate([
        onp.tile(everything, g), onp.repeat(global_inds, dim),
        onp.tile(local_inds, (1, block_size)).ravel()])
    return sp.csr_matrix((onp.ones(len(rows), dtype=bool), (rows, cols)),
                         shape=(dim, dim))


def _once(fn: Callable) -> Tuple[float, object]:
    """Wall time of one call, and its result."""
    return best_time(fn, 1)


def run(seed: int = 0, repeats: int = 5) -> List[Tuple[str, str]]:
    """Run the benchmark; return the table's rows as (label, value).

    Every repeat times each contender once, in turn, so that background load
    affects them alike; each row reports the best (min) over repeats.
    """
    from refold.sensitivity.colouring import colour_hessian
    from refold.sensitivity.sparse_hessian import (SparseBlockHessian,
                                                   sparse_hessian)

    fun, x0, global_inds, local_inds = build_objective(seed)
    dim = len(x0)
    rows = [("dimension D (globals + T x locals)",
             f"{dim} = {len(global_inds)} + {local_inds.shape[0]} x "
             f"{local_inds.shape[1]}")]
    refold_sbh = SparseBlockHessian(fun, local_inds)
    vittles = import_vittles()
    vittles_sbh = (None if vittles is None
                   else vittles.SparseBlockHessian(fun, local_inds))
    pattern = arrowhead_pattern(global_inds, local_inds, dim)

    times = {key: [] for key in ("refold", "refold_noverify", "vittles",
                                 "colour", "generic")}
    for _ in range(repeats):
        elapsed, refold_hess = _once(lambda: refold_sbh.get_hessian(x0))
        times["refold"].append(elapsed)
        num_hvps = refold_sbh.num_hvps
        times["refold_noverify"].append(
            _once(lambda: refold_sbh.get_hessian(x0, verify=False))[0])
        if vittles_sbh is not None:
            elapsed, vittles_hess = _once(lambda: vittles_sbh.get_hessian(x0))
            times["vittles"].append(elapsed)
        elapsed, colouring = _once(lambda: colour_hessian(pattern))
        times["colour"].append(elapsed)
        elapsed, (generic_hess, info) = _once(lambda: sparse_hessian(
            fun, x0, None, colouring=colouring, return_info=True))
        times["generic"].append(elapsed)
    best = {key: min(val) for key, val in times.items() if val}

    rows.append(("refold HVPs (SparseBlockHessian)",
                 f"{num_hvps - 1} + 1 verification probe (goal <= 16)"))
    rows.append(("refold SparseBlockHessian.get_hessian [s]",
                 f"{best['refold']:.3f}"))
    rows.append(("refold get_hessian(verify=False) [s]",
                 f"{best['refold_noverify']:.3f}"))
    rows.append(("refold sparse_hessian from the pattern: colours",
                 f"{info['num_colours']} (+1 probe)"))
    rows.append(("refold colour_hessian(pattern) [s]",
                 f"{best['colour']:.3f}"))
    rows.append(("refold sparse_hessian(colouring=...) [s]",
                 f"{best['generic']:.3f}"))
    rows.append(("max |sparse_hessian - SparseBlockHessian|",
                 f"{abs(generic_hess - refold_hess).max():.3g}"))
    if vittles_sbh is not None:
        diff = abs(sp.csr_matrix(vittles_hess) - refold_hess).max()
        scale = abs(refold_hess).max()
        rows.append(("vittles SparseBlockHessian.get_hessian [s]",
                     f"{best['vittles']:.3f}"))
        rows.append(("ratio vittles / refold (goal >= 2)",
                     f"{best['vittles'] / best['refold']:.2f}"))
        rows.append(("ratio vittles / refold (verify=False)",
                     f"{best['vittles'] / best['refold_noverify']:.2f}"))
        rows.append(("max |H_refold - H_vittles| (max |H|)",
                     f"{diff:.3g} ({scale:.3g})"))
    return rows


def main() -> None:
    rows = run()
    width = max(len(label) for label, _ in rows)
    print("Structured Hessian, Criteo-shaped logistic GLMM KL "
          f"(N = {NUM_ROWS}, T = {NUM_GROUPS}, {NUM_FIXED} fixed effects, "
          f"{NUM_QUADRATURE}-point Gauss-Hermite)")
    print("-" * (width + 36))
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


if __name__ == "__main__":
    main()
