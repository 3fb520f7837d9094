"""Figures for ``python -m refold --plots DIR`` (needs matplotlib).

matplotlib is an optional extra (``pip install -e ".[plots]"``); it is
imported only here, and only when figures are asked for.
"""
from __future__ import annotations

import os

import numpy as np


class Plotter:
    """Writes one PNG per tour section into ``directory``."""

    def __init__(self, directory: str):
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise SystemExit(
                "--plots needs matplotlib: pip install -e '.[plots]'") from None
        self._plt = plt
        os.makedirs(directory, exist_ok=True)
        self.directory = directory

    def plot(self, name: str, data: dict):
        """Draw the section's figure; return its path (None if it has none)."""
        draw = getattr(self, "_" + name, None)
        if draw is None:
            return None
        fig, ax = self._plt.subplots(figsize=(6, 4))
        draw(ax, data)
        fig.tight_layout()
        path = os.path.join(self.directory, name + ".png")
        fig.savefig(path, dpi=110)
        self._plt.close(fig)
        return path

    @staticmethod
    def _neyman_scott(ax, data):
        n, joint, marginal, se = (np.array([r[i] for r in data["rows"]])
                                  for i in (0, 1, 2, 3))
        ax.errorbar(n, marginal, yerr=2 * se, marker="o",
                    label="marginal MLE / EM (±2 SE)")
        ax.plot(n, joint, marker="s", label="joint MLE over (theta, z)")
        ax.axhline(data["theta0"], color="k", lw=0.8, label="theta_0")
        ax.axhline(data["theta0"] / 2, color="k", lw=0.8, ls="--",
                   label="theta_0 / 2")
        ax.set_xscale("log")
        ax.set_xlabel("number of pairs")
        ax.set_ylabel("estimate of theta")
        ax.set_title("Neyman-Scott: the joint MLE is inconsistent")
        ax.legend(fontsize=8)

    @staticmethod
    def _em_standard_errors(ax, data):
        names = [r[0] for r in data["rows"]]
        width, pos = 0.27, np.arange(len(names))
        for i, (label, column) in enumerate(
                [("naive (Q-Hessian)", 2), ("marginal-Hessian fix", 3),
                 ("brute force", 4)]):
            ax.bar(pos + (i - 1) * width, [r[column] for r in data["rows"]],
                   width, label=label)
        ax.set_xticks(pos, names, fontsize=8)
        ax.set_ylabel("standard error")
        ax.set_title("EM standard errors, linear mixed model")
        ax.legend(fontsize=8)

    @staticmethod
    def _linear_response(ax, data):
        ref = data["reference"]
        ax.scatter(ref, data["mfvb"], label="MFVB", marker="x")
        ax.scatter(ref, data["lr"], label="linear response", marker="o",
                   facecolors="none", edgecolors="C1")
        lim = [0, 1.1 * float(np.max(ref))]
        ax.plot(lim, lim, color="k", lw=0.8)
        ax.set_xlabel("exact posterior sd (importance sampling)")
        ax.set_ylabel("approximate sd")
        ax.set_title("Logistic GLMM: MFVB vs LR posterior sds")
        ax.legend(fontsize=8)

    @staticmethod
    def _taylor(ax, data):
        delta = [r[0] for r in data["rows"]]
        for order in range(1, 5):
            ax.plot(delta, [r[1 + order] for r in data["rows"]], marker="o",
                    label="order {}".format(order))
        ax.set_yscale("log")
        ax.set_xlabel("change in log prior sd")
        ax.set_ylabel("max |Taylor - re-fit|")
        ax.set_title("Taylor series of the optimum vs re-fitting")
        ax.legend(fontsize=8)
