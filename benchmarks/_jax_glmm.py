"""What a user would write instead: the GLMM sensitivity in JAX (optional).

Run as a script by ``default_paths_bench.py`` in its own process (JAX is an
optional benchmark dependency, never imported by refold), single-threaded,
on the same data, optimum and hyperparameter as refold's rows.  Two routes:

* **hand-written structured**: ``jax.jit`` of the KL (a line-by-line port of
  :class:`refold.models.logistic_glmm.GLMMObjective` with the prior
  variance of ``beta`` as hyperparameter), the Hessian's 16 colour products
  from one ``jax.linearize`` of the gradient (``vmap`` over the colours),
  the arrowhead blocks read off them, and a Schur-complement solve;
* **JAX's default**: ``lineax.linear_solve`` with ``lineax.CG`` on the
  Hessian-vector product operator.

Prints one JSON line: compile and steady times and the sensitivities.
"""
import json
import os
import sys
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                      "intra_op_parallelism_threads=1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as onp  # noqa: E402
from jax.scipy.special import digamma, gammaln  # noqa: E402

jax.config.update("jax_enable_x64", True)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _glmm_problem import glmm_problem  # noqa: E402

LOG_2PI = float(onp.log(2 * onp.pi))


def make_kl(objective):
    data, prior = objective.data, objective.prior
    k, t = data.n_fixed, data.n_groups
    x, x_sq = jnp.asarray(data.x), jnp.asarray(data.x ** 2)
    xty = jnp.asarray(data.y @ data.x)
    y_by_group = jnp.asarray(objective._y_by_group)
    group = jnp.asarray(data.group)
    nodes, weights = jnp.asarray(objective._nodes), jnp.asarray(
        objective._weights)
    a, b = prior.tau_shape, prior.tau_rate

    def kl(par, h):
        beta_mean, beta_var = par[:k], jnp.exp(par[k:2 * k])
        mu_mean, mu_var = par[2 * k], jnp.exp(par[2 * k + 1])
        shape, rate = jnp.exp(par[2 * k + 2]), jnp.exp(par[2 * k + 3])
        u_mean = par[2 * k + 4:2 * k + 4 + t]
        u_var = jnp.exp(par[2 * k + 4 + t:])
        e_tau = shape / rate
        e_log_tau = digamma(shape) - jnp.log(rate)
        z_mean = x @ beta_mean + u_mean[group]
        z_sd = jnp.sqrt(x_sq @ beta_var + u_var[group])
        softplus = jnp.logaddexp(0.0, z_mean[:, None]
                                 + z_sd[:, None] * nodes[None, :])
        log_lik = xty @ beta_mean + y_by_group @ u_mean - jnp.sum(
            softplus @ weights)
        sum_sq = jnp.sum((u_mean - mu_mean) ** 2 + u_var) + t * mu_var
        log_p_u = 0.5 * t * (e_log_tau - LOG_2PI) - 0.5 * e_tau * sum_sq
        log_prior = (-0.5 * jnp.sum(beta_mean ** 2 + beta_var) / h[0]
                     - 0.5 * k * jnp.log(2 * jnp.pi * prior.beta_var)
                     - 0.5 * (mu_mean ** 2 + mu_var) / prior.mu_var
                     - 0.5 * jnp.log(2 * jnp.pi * prior.mu_var)
                     + (a - 1.0) * e_log_tau - b * e_tau
                     + a * jnp.log(b) - gammaln(a))
        entropy = (0.5 * (jnp.sum(jnp.log(beta_var)) + jnp.log(mu_var)
                          + jnp.sum(jnp.log(u_var)))
                   + 0.5 * (k + 1 + t) * (1.0 + LOG_2PI)
                   + shape - jnp.log(rate) + gammaln(shape)
                   + (1.0 - shape) * digamma(shape))
        return -(log_lik + log_p_u + log_prior + entropy)
    return kl


def structured_route(kl, opt, h0, global_inds, local_inds):
    grad = jax.grad(kl, argnums=0)
    dim = opt.shape[0]
    g, m = len(global_inds), local_inds.shape[1]
    colours = onp.empty(dim, dtype=int)
    colours[global_inds] = onp.arange(g)
    colours[local_inds] = g + onp.arange(m)
    directions = jnp.asarray(
        (colours[None, :] == onp.arange(g + m)[:, None]).astype(float))

    @jax.jit
    def products_and_cross(par, hyper):
        _, hvp = jax.linearize(lambda p: grad(p, hyper), par)
        prods = jax.vmap(hvp)(directions)            # (g + m, D)
        cross = jax.jvp(lambda hh: grad(par, hh), (hyper,),
                        (jnp.ones_like(hyper),))[1]
        return prods, cross

    def solve(par, hyper):
        prods, cross = products_and_cross(par, hyper)
        prods, cross = onp.asarray(prods), onp.asarray(cross)
        glob = prods[:g][:, global_inds]
        glob = 0.5 * (glob + glob.T)
        cross_gl = prods[:g][:, local_inds]           # (g, T, m)
        loc = prods[g:][:, local_inds].transpose(1, 2, 0)  # (T, m, m)
        loc = 0.5 * (loc + loc.transpose(0, 2, 1))
        inv_loc = onp.linalg.inv(loc)
        c_g, c_l = cross[global_inds], cross[local_inds]
        cl = onp.einsum("gtm,tmn->tgn", cross_gl, inv_loc)
        schur = glob - onp.einsum("tgn,htn->gh", cl, cross_gl)
        rhs = c_g - onp.einsum("tgn,tn->g", cl, c_l)
        x_g = onp.linalg.solve(schur, rhs)
        x_l = onp.einsum("tmn,tn->tm", inv_loc,
                         c_l - onp.einsum("gtm,g->tm", cross_gl, x_g))
        out = onp.empty(dim)
        out[global_inds], out[local_inds] = x_g, x_l
        return -out
    return solve


def lineax_route(kl, opt, h0):
    import lineax
    grad = jax.grad(kl, argnums=0)

    @jax.jit
    def sens(par, hyper):
        op = lineax.FunctionLinearOperator(
            lambda v: jax.jvp(lambda p: grad(p, hyper), (par,), (v,))[1],
            jax.ShapeDtypeStruct(par.shape, par.dtype),
            tags=lineax.positive_semidefinite_tag)
        cross = jax.jvp(lambda hh: grad(par, hh), (hyper,),
                        (jnp.ones_like(hyper),))[1]
        sol = lineax.linear_solve(op, cross, solver=lineax.CG(
            rtol=1e-10, atol=1e-10, max_steps=100000))
        return -sol.value
    return sens


def main(n_groups: int) -> None:
    kl_refold, opt, h0, objective = glmm_problem(n_groups)
    kl = make_kl(objective)
    par, hyper = jnp.asarray(opt), jnp.asarray(h0)
    out = {}
    solve = structured_route(kl, opt, h0, objective.global_inds,
                             objective.local_inds)
    start = time.perf_counter()
    first = solve(par, hyper)
    out["structured_first"] = time.perf_counter() - start
    times = []
    for _ in range(5):
        start = time.perf_counter()
        sens = solve(par, hyper)
        times.append(time.perf_counter() - start)
    out["structured_steady"] = min(times)
    out["structured"] = sens.tolist()
    sens_cg = lineax_route(kl, opt, h0)
    start = time.perf_counter()
    jax.block_until_ready(sens_cg(par, hyper))
    out["lineax_first"] = time.perf_counter() - start
    times = []
    for _ in range(3):
        start = time.perf_counter()
        res = jax.block_until_ready(sens_cg(par, hyper))
        times.append(time.perf_counter() - start)
    out["lineax_steady"] = min(times)
    out["lineax"] = onp.asarray(res).tolist()
    del first
    print(json.dumps(out))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
