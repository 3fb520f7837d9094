"""Neyman-Scott: the joint MLE converges to theta/2, the marginal MLE does not.

Simulates many data sets of N pairs y_na, y_nb ~ N(z_n, theta) with a latent
mean z_n ~ N(0, 1) per pair, and estimates theta on each by

* the joint MLE over (theta, z): closed form, converges to theta_0 / 2;
* the marginal MLE of log p(y | theta), with z integrated out: consistent;
* EM with the exact E-step, whose marginal-Hessian standard error is compared
  with the spread of the estimates across simulations.

Run:  python docs/tutorials/neyman_scott.py [--fast] [--figures DIR]
"""
import sys

import numpy as np

from refold.models import neyman_scott
from _tutorial import TutorialRun  # docs/tutorials/_tutorial.py

NAME = "neyman_scott"


def experiment(n_sims, n_pairs, theta, seed=0):
    """Fit every method on ``n_sims`` simulated data sets."""
    rng = np.random.default_rng(seed)
    estimates = {method: np.empty(n_sims) for method in neyman_scott.METHODS}
    reported_se = {method: np.empty(n_sims) for method in neyman_scott.METHODS}
    for sim in range(n_sims):
        data = neyman_scott.simulate(n_pairs, theta, rng=rng)
        for method in neyman_scott.METHODS:
            result = neyman_scott.fit(data, method)
            estimates[method][sim] = result.theta
            reported_se[method][sim] = result.se
    return estimates, reported_se


def report(estimates, reported_se, theta, out):
    out("{:>10}  {:>12}  {:>14}  {:>18}".format(
        "method", "mean theta", "sd over sims", "mean reported SE"))
    for method in neyman_scott.METHODS:
        out("{:>10}  {:>12.4f}  {:>14.4f}  {:>18.4f}".format(
            method, estimates[method].mean(), estimates[method].std(ddof=1),
            reported_se[method].mean()))
    out("true theta = {}; theta / 2 = {}".format(theta, theta / 2))
    gap = np.max(np.abs(estimates["marginal"] - estimates["em"]))
    out("max |marginal - EM| over simulations: {:.1e}".format(gap))


def plot(estimates, theta, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    bins = np.linspace(min(estimates["joint"].min(), theta / 2) * 0.9,
                       max(estimates["marginal"].max(), theta) * 1.1, 50)
    ax.hist(estimates["joint"], bins=bins, alpha=0.7, label="joint MLE")
    ax.hist(estimates["marginal"], bins=bins, alpha=0.7, label="marginal MLE")
    ax.axvline(theta, color="k", linestyle="-", label=r"$\theta_0$")
    ax.axvline(theta / 2, color="k", linestyle="--", label=r"$\theta_0 / 2$")
    ax.set_xlabel(r"$\hat\theta$")
    ax.set_ylabel("simulations")
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    run = TutorialRun(NAME, __doc__, argv)
    n_sims, n_pairs = (20, 200) if run.fast else (400, 1000)
    theta = 2.0

    out = run.out
    out("{} simulations of N = {} pairs, theta_0 = {}".format(
        n_sims, n_pairs, theta))
    estimates, reported_se = experiment(n_sims, n_pairs, theta)
    report(estimates, reported_se, theta, out)
    run.finish(lambda png: plot(estimates, theta, png))
    return {"estimates": estimates, "reported_se": reported_se,
            "theta": theta}


if __name__ == "__main__":
    main(sys.argv[1:])
