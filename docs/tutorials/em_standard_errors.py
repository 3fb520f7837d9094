"""EM standard errors: naive Q-Hessian vs the marginal-Hessian fix vs finite
differences.

A two-component mixture of unit-variance normals with unknown weight and
means, fitted by EM. The parameter theta is the weight's free coordinate
log(pi_1 / pi_0) and the two means; the E-step parameters eta_n are the
log-ratios log(r_n1 / r_n0) of the responsibilities (log space, so nearly
degenerate posteriors stay exact).

Standard errors of theta (its free coordinates) from

* the naive inverse Hessian of the Q-function, H_tt^-1;
* the marginal-Hessian fix, (H_tt - H_te H_ee^-1 H_et)^-1 (EMCovariance);
* Louis' formula;
* the inverse of a finite-difference Hessian of the closed-form marginal log
  likelihood (the brute-force reference, no autograd involved).

Then the same check for the worked model refold.models.gaussian_mixture: a
three-component mixture in two dimensions with free weights, means and
covariances.

Run:  python docs/tutorials/em_standard_errors.py [--fast] [--figures DIR]
"""
import sys

import autograd.numpy as np
import numpy as onp
from autograd.scipy.special import logsumexp

import refold
from refold.models import gaussian_mixture
from refold.models.em_covariance import EMCovariance
from _tutorial import TutorialRun  # docs/tutorials/_tutorial.py

NAME = "em_standard_errors"
LOG_2PI = onp.log(2 * onp.pi)


def make_model(y):
    """Patterns, objectives and the EM fit for the data ``y``."""
    theta_pattern = refold.PatternDict()
    theta_pattern["weights"] = refold.SimplexArrayPattern(2, (1,))
    theta_pattern["means"] = refold.NumericArrayPattern((2,))
    eta_pattern = refold.NumericArrayPattern((len(y), 1))   # log-ratios

    def log_joint(theta):
        """log p(y_n, z_n = k | theta), shape (N, 2)."""
        return (np.log(theta["weights"][0])
                - 0.5 * (y[:, None] - theta["means"]) ** 2 - 0.5 * LOG_2PI)

    def neg_em_objective(theta, eta):
        """-E_q[log p(y, z | theta)] + E_q[log q(z)], q in log space."""
        logits = np.concatenate([np.zeros((len(y), 1)), eta], axis=1)
        log_r = logits - logsumexp(logits, axis=1, keepdims=True)
        return np.sum(np.exp(log_r) * (log_r - log_joint(theta)))

    def neg_marginal_log_lik(theta_free):
        """-log p(y | theta) at theta's free vector (the reference)."""
        theta = theta_pattern.fold(theta_free, free=True)
        return -onp.sum(logsumexp(log_joint(theta), axis=1))

    def louis(theta, eta):
        """sum_n Cov_q[complete-data score] in theta's free coordinates.

        With a binary z_n the score is s(0) or s(1) and the covariance is
        r_n0 r_n1 (s(1) - s(0))(s(1) - s(0))^T, where s(1) - s(0) =
        (1, -(y_n - mu_0), y_n - mu_1) in (log(pi_1/pi_0), mu_0, mu_1).
        """
        logits = onp.concatenate([onp.zeros((len(y), 1)), eta], axis=1)
        r = onp.exp(logits - logsumexp(logits, axis=1, keepdims=True))
        d = onp.stack([onp.ones(len(y)), -(y - theta["means"][0]),
                       y - theta["means"][1]], axis=1)
        return (d * (r[:, 0] * r[:, 1])[:, None]).T @ d

    return theta_pattern, eta_pattern, log_joint, neg_em_objective, \
        neg_marginal_log_lik, louis


def run_em(y, log_joint, tol=1e-13, max_iter=100000):
    """EM for the mixture, vectorised over observations."""
    theta = {"weights": onp.array([[0.5, 0.5]]),
             "means": onp.quantile(y, [0.25, 0.75])}
    for iteration in range(max_iter):
        a = log_joint(theta)
        r = onp.exp(a - logsumexp(a, axis=1, keepdims=True))
        new = {"weights": r.mean(axis=0, keepdims=True),
               "means": (r * y[:, None]).sum(0) / r.sum(0)}
        change = max(onp.max(onp.abs(new[k] - theta[k])) for k in theta)
        theta = new
        if change < tol:
            break
    a = log_joint(theta)
    return theta, a[:, 1:] - a[:, :1], iteration + 1


def finite_difference_hessian(fun, x, step=1e-4):
    """Central second differences of function values (no autograd)."""
    dim = len(x)
    hess = onp.empty((dim, dim))
    eye = onp.eye(dim) * step
    for i in range(dim):
        for j in range(i, dim):
            hess[i, j] = hess[j, i] = (
                fun(x + eye[i] + eye[j]) - fun(x + eye[i] - eye[j])
                - fun(x - eye[i] + eye[j]) + fun(x - eye[i] - eye[j])
            ) / (4 * step ** 2)
    return hess


def standard_errors(y):
    """Fit by EM and compute every kind of standard error."""
    theta_pattern, eta_pattern, log_joint, neg_em_objective, \
        neg_marginal_log_lik, louis = make_model(y)
    theta, eta, n_iter = run_em(y, log_joint)
    em_cov = EMCovariance(neg_em_objective, theta_pattern, eta_pattern,
                          theta, eta, louis_fun=louis)
    theta_free = theta_pattern.flatten(theta, free=True)
    fd_hess = finite_difference_hessian(neg_marginal_log_lik, theta_free)
    ses = {"naive": em_cov.standard_errors("naive"),
           "EM fix": em_cov.standard_errors("corrected"),
           "Louis": em_cov.standard_errors("louis"),
           "finite diff.": onp.sqrt(onp.diag(onp.linalg.inv(fd_hess)))}
    return theta_free, ses, em_cov, n_iter


def simulate(n_obs, separation, rng):
    labels = rng.uniform(size=n_obs) < 0.4
    return onp.where(labels, separation / 2, -separation / 2) \
        + rng.standard_normal(n_obs)


def report(title, theta_free, ses, em_cov, n_iter, out):
    names = ["log(pi1/pi0)", "mu_0", "mu_1"]
    out(title)
    out("EM iterations: {}; Hessian-vector products: {}; local directions "
        "dropped as negligible: {}".format(
            n_iter, em_cov.info["num_hvps"], em_cov.info["num_dropped"]))
    header = "{:>14} {:>10}".format("parameter", "estimate") + "".join(
        " {:>13}".format(kind) for kind in ses)
    out(header)
    out("-" * len(header))
    for i, name in enumerate(names):
        out("{:>14} {:>10.4f}".format(name, theta_free[i]) + "".join(
            " {:>13.5f}".format(ses[kind][i]) for kind in ses))
    gap = onp.max(onp.abs(ses["EM fix"] / ses["finite diff."] - 1))
    out("max relative difference, EM fix vs finite differences: "
        "{:.1e}".format(gap))
    out("")


def worked_model(n_obs, out):
    """gaussian_mixture.fit against a finite-difference marginal Hessian."""
    data = gaussian_mixture.simulate(
        n_obs, [0.3, 0.3, 0.4], [[-2.0, 0.0], [0.0, 2.0], [2.0, 0.0]],
        [onp.eye(2), [[1.0, 0.3], [0.3, 0.5]], [[0.6, -0.2], [-0.2, 1.0]]],
        rng=1)
    result = gaussian_mixture.fit(data, 3, rng=0)
    pattern = result.theta_pattern
    theta_free = pattern.flatten(result.estimates, free=True)

    def neg_marginal_log_lik(free):
        theta = pattern.fold(free, free=True)
        return -gaussian_mixture.marginal_log_likelihood(theta, data.y)

    fd_se = onp.sqrt(onp.diag(onp.linalg.inv(
        finite_difference_hessian(neg_marginal_log_lik, theta_free))))
    em_cov = result.em_covariance
    corrected = em_cov.standard_errors("corrected")
    naive = em_cov.standard_errors("naive")
    out("Worked model: refold.models.gaussian_mixture, K = 3 components in "
        "P = 2 dimensions, N = {}".format(n_obs))
    out("EM updates: {}; {} free coordinates; Hessian-vector products: "
        "{}".format(result.n_iter, len(theta_free), em_cov.info["num_hvps"]))
    out("free coordinates: max relative difference, EM fix vs finite "
        "differences: {:.1e}".format(onp.max(onp.abs(corrected / fd_se - 1))))
    out("naive / EM-fix standard error: min {:.2f}, max {:.2f}".format(
        onp.min(naive / corrected), onp.max(naive / corrected)))
    out("standard errors of the folded parameters (delta method):")
    out(result.comparison_table())
    out("")
    return {"corrected": corrected, "naive": naive, "finite diff.": fd_se}


def plot(ses, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r"$\log(\pi_1/\pi_0)$", r"$\mu_0$", r"$\mu_1$"]
    kinds = list(ses)
    width = 0.8 / len(kinds)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for k, kind in enumerate(kinds):
        ax.bar(onp.arange(3) + (k - (len(kinds) - 1) / 2) * width, ses[kind],
               width, label=kind)
    ax.set_xticks(onp.arange(3))
    ax.set_xticklabels(names)
    ax.set_ylabel("standard error")
    ax.legend(frameon=False, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    run = TutorialRun(NAME, __doc__, argv)
    n_obs = 200 if run.fast else 1000
    rng = onp.random.default_rng(0)

    out = run.out
    results = {}
    for label, separation in [("overlapping", 2.0), ("well separated", 16.0)]:
        y = simulate(n_obs, separation, rng)
        theta_free, ses, em_cov, n_iter = standard_errors(y)
        report("{} components (means -/+ {:g}), N = {}".format(
            label.capitalize(), separation / 2, n_obs),
            theta_free, ses, em_cov, n_iter, out)
        results[label] = {"ses": ses, "em_cov": em_cov}
    results["gaussian_mixture"] = worked_model(300 if run.fast else 1000,
                                               out)
    run.finish(lambda png: plot(results["overlapping"]["ses"], png))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
