"""Drop a little data: how many households decide a microcredit RCT?

A simulated microcredit-like randomised trial: half the households get
access to credit, and business profit is heavy-tailed (a few households earn
a great deal). The published-style analysis is OLS of profit on treatment
with robust standard errors. How many households must be dropped to flip the
sign of the estimated effect (controlling for baseline profit), or its
significance? The one-shot first-order
ranking (AMIP) is compared with the greedy search (exact rank-k downdates
for OLS, and the general Newton-based search), and every answer is checked
by a fresh fit without the set.

Run:  python docs/tutorials/drop_data_microcredit.py [--fast] [--figures DIR]
"""
import sys
import time

import autograd.numpy as anp
import numpy as np

from refold.sensitivity.data_weights import WeightSensitivity
from refold.sensitivity.drop_data import greedy_drop, predict_drop
from refold.sensitivity.ols_drop import OLSDrop
from refold.sensitivity.standard_errors import (sandwich_covariance,
                                                standard_error_fun)
from _tutorial import TutorialRun  # docs/tutorials/_tutorial.py

NAME = "drop_data_microcredit"


def simulate(n_obs, seed=4):
    """Profit (in $100) of ``n_obs`` households: half get credit (effect
    0.3); baseline profit is log-normal, and the noise is Student-t(3)
    scaled by it, so a few large businesses have very large profits."""
    rng = np.random.default_rng(seed)
    treated = (rng.random(n_obs) < 0.5).astype(float)
    baseline = np.exp(rng.standard_normal(n_obs))
    profit = (0.5 + 0.3 * treated + 0.5 * baseline
              + 0.7 * baseline * rng.standard_t(3, size=n_obs))
    return np.column_stack([np.ones(n_obs), treated, baseline]), profit


def fresh_fit(x, y, drop):
    """OLS without the rows ``drop`` (the independent check)."""
    keep = np.setdiff1d(np.arange(len(y)), drop)
    return np.linalg.lstsq(x[keep], y[keep], rcond=None)[0]


def analyse(x, y):
    n_obs = len(y)
    ols = OLSDrop(x, y, names=["const", "treated", "baseline"])
    theta = ols.opt_par

    def losses(t):
        return 0.5 * (y - anp.dot(x, t)) ** 2
    robust_se = float(np.sqrt(sandwich_covariance(losses, theta)[1, 1]))
    ws = WeightSensitivity(losses, theta)
    alpha = 0.05

    start = time.perf_counter()
    amip = ws.drop_data(1, alpha=alpha)             # one-shot first order
    amip_seconds = time.perf_counter() - start
    start = time.perf_counter()
    greedy = ols.greedy(1, alpha=alpha)              # exact downdates
    greedy_seconds = time.perf_counter() - start
    start = time.perf_counter()
    general = greedy_drop(ws, 1, alpha=alpha)        # Newton updates
    general_seconds = time.perf_counter() - start

    # Along the first-order ranking: the actual effect after dropping the
    # top k, by fresh fits, and the first k that flips the sign.
    scores = ws.influence(1)
    ranking = np.argsort(-scores)
    ks = np.unique(np.linspace(0, max(amip.n_dropped, greedy.n_dropped) + 5,
                               40).astype(int))
    ranked_path = np.array([fresh_fit(x, y, ranking[:k])[1] for k in ks])
    predicted_path = theta[1] - np.array([scores[ranking[:k]].sum()
                                          for k in ks])
    flips = [k for k in range(1, int(alpha * n_obs) + 1)
             if fresh_fit(x, y, ranking[:k])[1] < 0]
    first_order_needed = flips[0] if flips else None

    # Significance of the robust (HC0) t-test.
    se_fun = standard_error_fun(losses, 1, kind="sandwich")
    significance = ols.greedy(1, alpha=alpha, target="significance",
                              se="sandwich")
    # A higher-order prediction of dropping the greedy set.
    prediction = predict_drop(ws, greedy.indices, 1, order=2)
    return {
        "n_obs": n_obs, "theta": theta, "robust_se": robust_se,
        "amip": amip, "greedy": greedy, "general": general,
        "significance": significance, "se_fun": se_fun,
        "first_order_needed": first_order_needed,
        "ks": ks, "ranked_path": ranked_path,
        "predicted_path": predicted_path, "prediction": prediction,
        "fresh_greedy": fresh_fit(x, y, greedy.indices),
        "fresh_amip": fresh_fit(x, y, amip.indices),
        "fresh_significance": fresh_fit(x, y, significance.indices),
        "seconds": {"first order": amip_seconds, "greedy (OLS)":
                    greedy_seconds, "greedy (Newton)": general_seconds},
    }


def report(res, out):
    theta, se = res["theta"], res["robust_se"]
    out("N = {} households; effect of credit on profit: {:.3f} (robust se "
        "{:.3f}, t = {:.2f})".format(res["n_obs"], theta[1], se,
                                     theta[1] / se))
    out("")
    out("{:<34} {:>8} {:>9} {:>14} {:>10}".format(
        "how many to flip the sign?", "dropped", "fraction",
        "effect after", "seconds"))
    amip, greedy, general = res["amip"], res["greedy"], res["general"]
    rows = [("first order, predicted (AMIP)", amip.n_dropped,
             amip.predicted_qoi, res["seconds"]["first order"]),
            ("  ... that set, re-fitted", amip.n_dropped,
             res["fresh_amip"][1], None),
            ("greedy, exact OLS downdates", greedy.n_dropped,
             res["fresh_greedy"][1], res["seconds"]["greedy (OLS)"]),
            ("greedy, Newton updates", general.n_dropped,
             general.refit_qoi, res["seconds"]["greedy (Newton)"])]
    for label, k, q, secs in rows:
        out("{:<34} {:>8d} {:>9.2%} {:>14.4f} {:>10}".format(
            label, k, k / res["n_obs"], q,
            "" if secs is None else "{:.3f}".format(secs)))
    needed = res["first_order_needed"]
    out("first-order ranking, checked by re-fits: the top {} flip the sign"
        .format(needed if needed is not None else "(none within budget)"))
    out("greedy (OLS) and greedy (Newton): same size {}, same set {}".format(
        greedy.n_dropped == general.n_dropped,
        sorted(greedy.indices) == sorted(general.indices)))
    pred = res["prediction"]
    out("dropping the greedy set: effect by order 1 {:.4f}, order 2 {:.4f}, "
        "re-fit {:.4f}".format(pred.terms_qoi[0], pred.terms_qoi[1],
                               res["fresh_greedy"][1]))
    sig = res["significance"]
    out("to lose significance at 5% (robust se): drop {} ({:.2%}); effect "
        "{:.4f}, se {:.4f} after".format(sig.n_dropped, sig.fraction,
                                         sig.refit_qoi, sig.refit_se))


def plot(res, x, y, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9.6, 3.8))
    rng = np.random.default_rng(0)
    jitter = x[:, 1] + 0.15 * rng.standard_normal(len(y))
    y = y - res["theta"][2] * x[:, 2]     # profit net of baseline
    dropped = np.zeros(len(y), dtype=bool)
    dropped[res["greedy"].indices] = True
    left.scatter(jitter[~dropped], y[~dropped], s=4, color="grey",
                 alpha=0.5, label="kept")
    left.scatter(jitter[dropped], y[dropped], s=12, color="C3",
                 label="greedy set ({})".format(dropped.sum()))
    left.set_yscale("symlog")
    left.set_xticks([0, 1])
    left.set_xticklabels(["control", "credit"])
    left.set_ylabel("profit net of baseline (symlog)")
    left.legend(frameon=False, fontsize=8)
    greedy = res["greedy"]
    right.plot(greedy.path_n_dropped, greedy.path_qoi, "o-", color="C3",
               label="greedy (exact fits)")
    right.plot(res["ks"], res["ranked_path"], "s-", color="C0", ms=3,
               label="first-order ranking, re-fitted")
    right.plot(res["ks"], res["predicted_path"], "--", color="C0",
               label="first-order prediction")
    right.axhline(0.0, color="k", linewidth=0.8)
    right.set_xlabel("households dropped")
    right.set_ylabel("estimated effect")
    right.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    run = TutorialRun(NAME, __doc__, argv)
    x, y = simulate(400 if run.fast else 2000)
    res = analyse(x, y)
    report(res, run.out)
    run.finish(lambda png: plot(res, x, y, png))
    res["x"], res["y"] = x, y
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
