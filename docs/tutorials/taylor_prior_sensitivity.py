"""Prior sensitivity by Taylor series: orders 1-4 against re-fitted optima.

A Bayesian logistic regression on few observations, so that the prior
matters: theta ~ N(0, exp(-epsilon) I) (epsilon = log prior precision), and
the MAP estimate theta_hat(epsilon). Around epsilon_0 = 0 refold's
ParametricSensitivityTaylorExpansion gives the Taylor series of
theta_hat(epsilon) to order 4 from ONE factorisation of the Hessian; it is
compared with the optimum re-fitted at every epsilon on a grid (the truth).
The series' own report says where it stops being trustworthy.

Run:  python docs/tutorials/taylor_prior_sensitivity.py [--fast] [--figures DIR]
"""
import sys
import time
import warnings

import autograd.numpy as anp
import numpy as np

from refold.sensitivity.refit import refit
from refold.sensitivity.taylor import (
    ParametricSensitivityTaylorExpansion, TaylorSeriesWarning)
from _tutorial import TutorialRun  # docs/tutorials/_tutorial.py

NAME = "taylor_prior_sensitivity"
MAX_ORDER = 4


def make_objective(n_obs, seed=0):
    rng = np.random.default_rng(seed)
    true_theta = np.array([1.5, -1.0, 0.5, 0.0, 2.0])
    x = rng.standard_normal((n_obs, len(true_theta)))
    y = (rng.uniform(size=n_obs)
         < 1 / (1 + np.exp(-x @ true_theta))).astype(float)

    def objective(theta, log_prec):
        """Negative log posterior (up to a constant) at prior precision
        exp(log_prec[0])."""
        z = x @ theta
        return (anp.sum(anp.logaddexp(0.0, z) - y * z)
                + 0.5 * anp.exp(log_prec[0]) * anp.sum(theta ** 2)
                - 0.5 * len(theta) * log_prec[0])

    return objective, len(true_theta)


def sweep(objective, dim, grid):
    eps0 = np.zeros(1)
    opt = refit(objective, np.zeros(dim), eps0).x
    start = time.perf_counter()
    taylor = ParametricSensitivityTaylorExpansion.optimization_objective(
        objective, opt, eps0, order=MAX_ORDER)
    # All points of the grid lie on one line through eps0: the directional
    # derivatives are computed once and rescaled for every point.
    predictions = np.empty((MAX_ORDER, len(grid), dim))
    converging = np.empty(len(grid), dtype=bool)
    newton_step = np.empty(len(grid))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TaylorSeriesWarning)
        for i, eps in enumerate(grid):
            for order in range(1, MAX_ORDER + 1):
                predictions[order - 1, i] = taylor.evaluate_taylor_series(
                    np.array([eps]), max_order=order)
            _, report = taylor.evaluate_taylor_series(
                np.array([eps]), return_report=True)
            converging[i] = report.converging
            newton_step[i] = report.newton_step_norm
    taylor_seconds = time.perf_counter() - start
    start = time.perf_counter()
    refits = np.empty((len(grid), dim))
    previous = opt
    for i in np.argsort(np.abs(grid)):     # warm starts outward from eps0
        previous = refits[i] = refit(objective, previous,
                                     np.array([grid[i]])).x
    refit_seconds = time.perf_counter() - start
    return {"grid": grid, "opt": opt, "predictions": predictions,
            "refits": refits, "converging": converging,
            "newton_step": newton_step,
            "taylor_seconds": taylor_seconds, "refit_seconds": refit_seconds}


def report(res, coordinate, out):
    grid, errors = res["grid"], np.max(
        np.abs(res["predictions"] - res["refits"][None]), axis=2)
    out("max |Taylor prediction - re-fitted optimum| over the {} "
        "coordinates".format(res["refits"].shape[1]))
    out("{:>9} {:>9}".format("epsilon", "prior sd") + "".join(
        " {:>10}".format("order {}".format(k))
        for k in range(1, MAX_ORDER + 1)) + "  {:>10} {:>12}".format(
            "converging", "Newton step"))
    for i, eps in enumerate(grid):
        out("{:>9.2f} {:>9.3f}".format(eps, np.exp(-eps / 2)) + "".join(
            " {:>10.2e}".format(errors[k, i]) for k in range(MAX_ORDER))
            + "  {:>10} {:>12.2e}".format(str(bool(res["converging"][i])),
                                          res["newton_step"][i]))
    out("(converging, Newton step: the order-{} series' own report, "
        "computed without re-fitting)".format(MAX_ORDER))
    out("Taylor series (orders 1-{}, all {} points): {:.2f} s; re-fits: "
        "{:.2f} s".format(MAX_ORDER, len(grid), res["taylor_seconds"],
                          res["refit_seconds"]))


def plot(res, coordinate, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = res["grid"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.6, 3.8))
    left.plot(grid, res["refits"][:, coordinate], "k-", linewidth=2.5,
              label="re-fitted")
    for k in range(MAX_ORDER):
        left.plot(grid, res["predictions"][k, :, coordinate], "--",
                  label="order {}".format(k + 1))
    left.axvline(0.0, color="grey", linewidth=0.8)
    left.set_xlabel(r"$\epsilon$ = log prior precision")
    left.set_ylabel(r"$\hat\theta_{}(\epsilon)$".format(coordinate))
    left.legend(frameon=False, fontsize=8)
    errors = np.max(np.abs(res["predictions"] - res["refits"][None]), axis=2)
    away = grid != 0.0                      # the error is 0 at eps0
    for k in range(MAX_ORDER):
        right.semilogy(grid[away], errors[k, away],
                       label="order {}".format(k + 1))
    right.semilogy(grid[away], res["newton_step"][away], "k:",
                   label="Newton-step estimate (order {})".format(MAX_ORDER))
    bad = ~res["converging"] & away
    if bad.any():
        right.scatter(grid[bad], errors[-1, bad], marker="x", color="k",
                      zorder=3, label="report: not converging")
    right.axvline(0.0, color="grey", linewidth=0.8)
    right.set_xlabel(r"$\epsilon$ = log prior precision")
    right.set_ylabel("max abs error")
    right.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    run = TutorialRun(NAME, __doc__, argv)
    n_obs = 40
    grid = np.linspace(-4.0, 4.0, 5 if run.fast else 33)
    coordinate = 4

    out = run.out
    objective, dim = make_objective(n_obs)
    out("logistic regression, N = {}, {} coefficients, prior "
        "N(0, exp(-epsilon) I), expansion at epsilon_0 = 0".format(
            n_obs, dim))
    res = sweep(objective, dim, grid)
    report(res, coordinate, out)
    run.finish(lambda png: plot(res, coordinate, png))
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
