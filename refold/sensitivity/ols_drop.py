r"""Dropping data from ordinary least squares, exactly.

For least squares :math:`\hat\theta = A^{-1} X^\top y` with :math:`A =
X^\top X`, dropping a set :math:`S` is a rank-:math:`|S|` downdate:
:math:`A_{-S} = A - X_S^\top X_S` and :math:`b_{-S} = b - X_S^\top y_S`,
and the exact effect of dropping one more observation :math:`n` is the
leave-one-out formula

.. math::

    \hat\theta_{-n} - \hat\theta = -\frac{A^{-1} x_n r_n}{1 - h_n},
    \qquad h_n = x_n^\top A^{-1} x_n,

with :math:`r_n` the residual; the residual sum of squares falls by
:math:`r_n^2 / (1 - h_n)` and :math:`c^\top A^{-1} c` rises by
:math:`(x_n^\top A^{-1} c)^2 / (1 - h_n)`.  :class:`OLSDrop` therefore
ranks every remaining observation by its *exact* effect on the target (sign,
threshold, or significance with the classical standard error), drops the
best batch, downdates exactly, and repeats: the greedy search needs no
approximation at all.  With a sandwich (optionally clustered) standard error
the state is still exact and the ranking is by the exact weight derivative
of the target (autograd through the closed form).  :meth:`OLSDrop.exhaustive`
evaluates every set up to a size in batches (one ``(M, D, D)`` solve per
chunk of sets), the reference the greedy search is tested against.

Quantities of interest are linear, :math:`q = c^\top\theta` (an index or
the vector :math:`c`).  A design whose columns are collinear is refused
with their names (:func:`refold.sensitivity.standard_errors.check_nonsingular`).
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Optional, Sequence

import autograd
import autograd.numpy as anp
import numpy as np

from refold.sensitivity._checks import check_int, real_array
from refold.sensitivity._drop_common import (TARGETS, check_fraction,
                                             critical_value, next_batch)
from refold.sensitivity.drop_data import DropSearchResult
from refold.sensitivity.standard_errors import _group_sum, check_nonsingular

__all__ = ["OLSDrop"]

_SE_KINDS = ("model", "sandwich")


class OLSDrop:
    r"""Exact drop-data analysis of ordinary least squares.

    Parameters
    ----------
    x : array_like, shape (N, D)
        The design (include a column of ones for an intercept).
    y : array_like, shape (N,)
    names : sequence of str, optional
        Column names, used in errors (default ``x[:, j]``).
    clusters : array_like, shape (N,), optional
        Cluster labels for the clustered sandwich standard error.

    Raises
    ------
    ValueError
        Non-finite or mis-shaped data, ``N <= D``, or collinear columns
        (named).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.column_stack([np.ones(6), [0.0, 1, 2, 3, 4, 5]])
    >>> y = np.array([0.0, 0.1, -0.1, 0.2, 0.0, 1.5])
    >>> ols = OLSDrop(x, y, names=["const", "slope"])
    >>> res = ols.greedy(1, alpha=0.4)
    >>> res.found, res.indices.tolist()
    (True, [5, 3])
    >>> keep = [0, 1, 2, 4]                       # confirm by a fresh fit
    >>> bool(np.linalg.lstsq(x[keep], y[keep], rcond=None)[0][1] < 0)
    True
    """

    def __init__(self, x: Any, y: Any, *,
                 names: Optional[Sequence[str]] = None,
                 clusters: Any = None) -> None:
        x = np.array(real_array(x, "x"), dtype=float)
        y = np.array(real_array(y, "y"), dtype=float)
        if x.ndim != 2 or x.shape[0] <= x.shape[1]:
            raise ValueError(f"x must be an (N, D) design with N > D; got "
                             f"shape {x.shape}")
        if y.shape != (x.shape[0],):
            raise ValueError(f"y must have shape ({x.shape[0]},); got "
                             f"{y.shape}")
        for name, arr in (("x", x), ("y", y)):
            if not np.all(np.isfinite(arr)):
                bad = np.argwhere(~np.isfinite(arr))[0].tolist()
                raise ValueError(f"{name} must be finite; {name}{bad} is not")
        self.names = [f"x[:, {j}]" for j in range(x.shape[1])] \
            if names is None else [str(s) for s in names]
        if len(self.names) != x.shape[1]:
            raise ValueError(f"names must have {x.shape[1]} entries; got "
                             f"{len(self.names)}")
        self.x, self.y = x, y
        self.n_obs, self.dim = x.shape
        self._codes = None
        if clusters is not None:
            labels = np.asarray(clusters)
            if labels.shape != (self.n_obs,):
                raise ValueError(f"clusters must have shape ({self.n_obs},);"
                                 f" got {labels.shape}")
            self._codes = np.unique(labels, return_inverse=True)[1].ravel()
            self._n_clusters = int(self._codes.max()) + 1
        self.opt_par = self.fit(np.ones(self.n_obs))

    # ------------------------------------------------------------ fitting
    def _solve_normal(self, a, b):
        check_nonsingular(a, "X'X of the kept observations", self.names)
        return np.linalg.solve(a, b)

    def fit(self, weights: Any) -> np.ndarray:
        """The weighted least-squares fit (a fresh solve of the normal
        equations; for 0/1 weights, the fit without the dropped rows)."""
        w = np.asarray(weights, dtype=float)
        a = (self.x.T * w) @ self.x
        return self._solve_normal(a, (self.x.T * w) @ self.y)

    def _contrast(self, qoi):
        if isinstance(qoi, (int, np.integer)) and not isinstance(
                qoi, (bool, np.bool_)):
            if not -self.dim <= qoi < self.dim:
                raise ValueError(f"qoi as an index must be in [0, "
                                 f"{self.dim}); got {qoi}")
            c = np.zeros(self.dim)
            c[qoi] = 1.0
            return c
        c = np.array(real_array(qoi, "qoi"), dtype=float)
        if c.shape != (self.dim,) or not np.all(np.isfinite(c)):
            raise ValueError(f"qoi must be an index or a finite contrast "
                             f"vector of length {self.dim}; got shape "
                             f"{c.shape}")
        if not np.any(c):
            raise ValueError("qoi does not depend on the parameters (the "
                             "contrast is zero)")
        return c

    # ------------------------------------------------------------ targets
    def _spec(self, qoi, target, se, level, threshold):
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}; got "
                             f"{target!r}")
        if se not in _SE_KINDS:
            raise ValueError(f"se must be one of {_SE_KINDS}; got {se!r}")
        if target == "threshold":
            if threshold is None or not np.isfinite(threshold):
                raise ValueError(f"target='threshold' needs a finite "
                                 f"threshold; got {threshold!r}")
        elif threshold is not None:
            raise ValueError("threshold is only used with target='threshold'")
        spec = {"c": self._contrast(qoi), "target": target, "se": se,
                "z": critical_value(level) if target == "significance"
                else 0.0, "offset": float(threshold or 0.0), "side": 0.0}
        q0 = float(spec["c"] @ self.opt_par)
        if target == "significance":
            if q0 == 0:
                raise ValueError("the quantity of interest is exactly zero")
            spec["side"] = 1.0 if q0 > 0 else -1.0
        return spec

    def _batch_values(self, weights, spec):
        """Exact ``(q, se, t, ok)`` for each row of ``weights`` (M, N)."""
        w = np.atleast_2d(weights)
        a = np.einsum("mn,nd,ne->mde", w, self.x, self.x)
        b = np.einsum("mn,nd,n->md", w, self.x, self.y)
        scale = np.sqrt(np.einsum("mdd->md", a))
        with np.errstate(divide="ignore", invalid="ignore"):
            scaled = a / scale[:, :, None] / scale[:, None, :]
            ev = np.linalg.eigvalsh(scaled)
            ok = np.all(scale > 0, axis=1) & (ev[:, 0] > 1e-10 * ev[:, -1])
        a[~ok] = np.eye(self.dim)
        theta = np.linalg.solve(a, b[:, :, None])[:, :, 0]
        q = theta @ spec["c"]
        se = np.full(q.shape, np.nan)
        if spec["target"] == "significance":
            resid = self.y[None, :] - theta @ self.x.T
            ainv_c = np.linalg.solve(a, np.broadcast_to(
                spec["c"], (len(q), self.dim))[:, :, None])[:, :, 0]
            if spec["se"] == "model":
                dof = w.sum(axis=1) - self.dim
                var = np.einsum("mn,mn->m", w, resid ** 2) / dof * (
                    ainv_c @ spec["c"])
            else:
                u = (w * resid)[:, :, None] * self.x[None]     # (M, N, D)
                if self._codes is not None:
                    one_hot = np.eye(self._n_clusters)[self._codes]
                    u = np.einsum("nc,mnd->mcd", one_hot, u)
                proj = np.einsum("mkd,md->mk", u, ainv_c)
                var = np.sum(proj ** 2, axis=1)
            se = np.sqrt(var)
        t = q - spec["offset"] - spec["side"] * spec["z"] * np.nan_to_num(se)
        return q, se, t, ok

    def _t_of_weights(self, spec):
        """The target as an autograd function of the weights."""
        x, y, c = self.x, self.y, spec["c"]

        def t_fun(w):
            a = anp.dot(x.T * w, x)
            theta = anp.linalg.solve(a, anp.dot(x.T * w, y))
            q = anp.dot(c, theta)
            resid = y - anp.dot(x, theta)
            ainv_c = anp.linalg.solve(a, c)
            u = (w * resid)[:, None] * x
            if self._codes is not None:
                u = _group_sum(u, self._codes, self._n_clusters)
            se = anp.sqrt(anp.sum(anp.dot(u, ainv_c) ** 2))
            return q - spec["side"] * spec["z"] * se
        return t_fun

    # ------------------------------------------------------------ public
    def first_order_scores(self, qoi: Any, *, target: str = "sign",
                           se: str = "model", level: float = 0.05,
                           threshold: Optional[float] = None) -> np.ndarray:
        r"""The influence scores :math:`dt/dw_n` of the target at the full
        data (dropping ``n`` changes ``t`` by about ``-scores[n]``): the
        first-order (AMIP) ranking.  For ``'sign'``/``'threshold'``,
        :math:`c^\top A^{-1} x_n r_n` in :math:`O(ND)`."""
        spec = self._spec(qoi, target, se, level, threshold)
        return self._scores(spec, np.ones(self.n_obs), self.opt_par,
                            exact=False)

    def _scores(self, spec, w, theta, exact):
        """Exact single-drop changes of ``t`` (negated), or derivatives."""
        x = self.x
        a = (x.T * w) @ x
        ainv = np.linalg.inv(a)
        resid = self.y - x @ theta
        v = x @ (ainv @ spec["c"])
        if spec["target"] == "significance" and spec["se"] == "sandwich":
            return np.asarray(autograd.grad(self._t_of_weights(spec))(w))
        if not exact:
            scores = v * resid
            if spec["target"] == "significance":     # model se
                dof = w.sum() - self.dim
                rss, cac = float(w @ resid ** 2), float(spec["c"] @ ainv
                                                        @ spec["c"])
                sig2 = rss / dof
                # d se / d w_n of sqrt(rss / dof * cac)
                d_rss, d_dof, d_cac = resid ** 2, 1.0, -v ** 2
                d_var = (d_rss * cac / dof - rss * cac / dof ** 2 * d_dof
                         + sig2 * d_cac)
                d_se = d_var / (2 * np.sqrt(sig2 * cac))
                scores = scores - spec["side"] * spec["z"] * d_se
            return scores
        lev = np.einsum("nd,de,ne->n", x, ainv, x)
        room = 1.0 - lev
        safe = (w > 0) & (room > 1e-10)
        room = np.where(safe, room, 1.0)
        dq = -v * resid / room                     # exact change of q
        if spec["target"] != "significance":
            return np.where(safe, -dq, -np.inf)
        dof = w.sum() - self.dim
        rss, cac = float(w @ resid ** 2), float(spec["c"] @ ainv @ spec["c"])
        var = (rss - resid ** 2 / room) / (dof - 1) * (cac + v ** 2 / room)
        q = float(spec["c"] @ theta)
        se_now = np.sqrt(rss / dof * cac)
        t_now = q - spec["side"] * spec["z"] * se_now
        t_new = q + dq - spec["side"] * spec["z"] * np.sqrt(
            np.maximum(var, 0.0))
        return np.where(safe, t_now - t_new, -np.inf)

    def drop_values(self, sets: Any, qoi: Any, *, target: str = "sign",
                    se: str = "model", level: float = 0.05,
                    threshold: Optional[float] = None) -> np.ndarray:
        """Exact ``(q, se, t)`` (rows) after dropping each set in ``sets``
        (a list of index arrays), by fresh solves: the brute-force check."""
        spec = self._spec(qoi, target, se, level, threshold)
        weights = np.ones((len(sets), self.n_obs))
        for i, s in enumerate(sets):
            weights[i, np.asarray(s, dtype=int)] = 0.0
        q, se_v, t, ok = self._batch_values(weights, spec)
        if not np.all(ok):
            bad = int(np.flatnonzero(~ok)[0])
            raise ValueError(f"dropping sets[{bad}] leaves X'X singular")
        return np.column_stack([q, se_v, t])

    def greedy(self, qoi: Any, alpha: float = 0.05, *, target: str = "sign",
               se: str = "model", level: float = 0.05,
               threshold: Optional[float] = None,
               batch_fraction: float = 0.25,
               max_batch: Optional[int] = None) -> DropSearchResult:
        """Greedy search with exact downdates and exact re-ranking (see the
        module documentation); arguments as in
        :func:`refold.sensitivity.drop_data.greedy_drop`, with ``se``
        ``'model'`` (classical) or ``'sandwich'`` (HC0, clustered when the
        object has ``clusters``)."""
        alpha = check_fraction(alpha, "alpha")
        batch_fraction = check_fraction(batch_fraction, "batch_fraction")
        if max_batch is not None:
            max_batch = check_int(max_batch, "max_batch", minimum=1,
                                  type_error=ValueError)
        spec = self._spec(qoi, target, se, level, threshold)
        budget = int(np.floor(alpha * self.n_obs))
        w = np.ones(self.n_obs)
        a, b = self.x.T @ self.x, self.x.T @ self.y
        theta = self.opt_par
        q0, _, t0, _ = (v[0] for v in self._batch_values(w, spec))
        sign = 1.0 if t0 > 0 else -1.0
        if t0 == 0:
            raise ValueError(f"the {target} target is exactly zero on the "
                             f"full data")
        dropped, path, message = [], [(0, q0, t0)], ""
        t_now, last = t0, np.zeros(0, dtype=int)
        while sign * t_now > 0:
            room = budget - len(dropped)
            if room <= 0:
                message = (f"the target cannot be reached by dropping up to "
                           f"floor(alpha * N) = {budget} observations")
                break
            # Dropping n moves t towards the flip by gain[n] (exactly, or
            # to first order for a sandwich standard error).
            gain = sign * self._scores(spec, w, theta, exact=True)
            batch = next_batch(gain, w > 0, abs(t_now), room,
                               batch_fraction, max_batch)
            if batch.size == 0:
                message = ("no remaining observation moves the target "
                           "towards the flip")
                break
            xs = self.x[batch]
            a = a - xs.T @ xs                    # exact rank-k downdate
            b = b - xs.T @ self.y[batch]
            try:
                theta = self._solve_normal(a, b)
            except ValueError as err:
                message = f"dropping the next batch would fail: {err}"
                break
            w[batch] = 0.0
            dropped.extend(batch.tolist())
            last = batch
            q_now, _, t_now, _ = (v[0] for v in self._batch_values(w, spec))
            path.append((len(dropped), q_now, t_now))
        if sign * t_now <= 0 and last.size > 1:
            # The shortest prefix of the last batch that still flips.
            keep = len(dropped) - last.size
            lo, hi = 0, last.size
            while hi - lo > 1:
                mid = (lo + hi) // 2
                trial = w.copy()
                trial[last[mid:]] = 1.0
                if sign * self._batch_values(trial, spec)[2][0] <= 0:
                    hi = mid
                else:
                    lo = mid
            dropped = dropped[:keep + hi]
            w[last[hi:]] = 1.0
            path = [p for p in path if p[0] <= len(dropped)]
            q_now, _, t_now, _ = (v[0] for v in self._batch_values(w, spec))
            path.append((len(dropped), q_now, t_now))
        return self._result("ols greedy", dropped, path, message, spec, t0,
                            q0, sign)

    def exhaustive(self, qoi: Any, max_size: int, *, target: str = "sign",
                   se: str = "model", level: float = 0.05,
                   threshold: Optional[float] = None,
                   max_sets: int = 2_000_000,
                   chunk: int = 4096) -> DropSearchResult:
        """The smallest set up to ``max_size`` that flips the target, by
        exact evaluation of every set (in chunks of ``chunk`` sets); the
        first in lexicographic order among the smallest."""
        max_size = check_int(max_size, "max_size", minimum=1,
                             type_error=ValueError)
        total = sum(math.comb(self.n_obs, k) for k in range(1, max_size + 1))
        if total > check_int(max_sets, "max_sets", minimum=1,
                             type_error=ValueError):
            raise ValueError(f"exhaustive search up to size {max_size} of "
                             f"N = {self.n_obs} evaluates {total} sets, more "
                             f"than max_sets = {max_sets}")
        spec = self._spec(qoi, target, se, level, threshold)
        q0, _, t0, _ = (v[0] for v in self._batch_values(
            np.ones(self.n_obs), spec))
        sign = 1.0 if t0 > 0 else -1.0
        best, path = (0, q0, t0), [(0, q0, t0)]
        for size in range(1, max_size + 1):
            combos = itertools.combinations(range(self.n_obs), size)
            while True:
                block = np.array(list(itertools.islice(combos, chunk)),
                                 dtype=int).reshape(-1, size)
                if block.size == 0:
                    break
                w = np.ones((len(block), self.n_obs))
                np.put_along_axis(w, block, 0.0, axis=1)
                q, _, t, ok = self._batch_values(w, spec)
                score = np.where(ok, sign * t, np.inf)
                i = int(np.argmin(score))
                if score[i] < sign * best[2]:
                    best = (size, float(q[i]), float(t[i]))
                if score[i] <= 0:
                    first = int(np.flatnonzero(score <= 0)[0])
                    path.append((size, float(q[first]), float(t[first])))
                    return self._result("ols exhaustive",
                                        block[first].tolist(), path, "",
                                        spec, t0, q0, sign)
        path.append(best)
        return self._result(
            "ols exhaustive", [], path, f"no set of up to {max_size} "
            f"observations flips the {target} target ({total} sets)", spec,
            t0, q0, sign)

    def _result(self, method, dropped, path, message, spec, t0, q0, sign):
        idx = np.asarray(dropped, dtype=int)
        keep = np.ones(self.n_obs, dtype=bool)
        keep[idx] = False
        r_theta, r_q, r_se, r_t, ok, r_msg = None, None, None, None, False, ""
        try:   # the confirming re-fit: least squares on the kept rows
            r_theta = np.linalg.lstsq(self.x[keep], self.y[keep],
                                      rcond=None)[0]
            q, se_v, t, good = self._batch_values(keep.astype(float), spec)
            ok = bool(good[0])
            r_q, r_t = float(r_theta @ spec["c"]), float(t[0])
            r_se = None if spec["target"] != "significance" else float(se_v[0])
            if not ok:
                r_msg = "the kept observations leave X'X singular"
        except np.linalg.LinAlgError as err:
            r_msg = f"the confirming fit failed: {err}"
        path = np.array(path, dtype=float).reshape(-1, 3)
        found = bool(ok and sign * r_t <= 0)
        best = float(path[np.argmin(sign * path[:, 2]), 2])
        if found:
            text = (f"dropping {idx.size} of {self.n_obs} observations "
                    f"({idx.size / self.n_obs:.3%}) flips the "
                    f"{spec['target']} target from {t0:.4g} to {r_t:.4g} "
                    f"(confirmed by a fresh least-squares fit)")
        else:
            text = (message or "no flip") + (
                f"; the best target value reached is {best:.4g} (from "
                f"{t0:.4g})") + (f"; {r_msg}" if r_msg else "")
        return DropSearchResult(
            indices=idx, found=found, method=method, target=spec["target"],
            n_obs=self.n_obs, qoi=float(q0), target_value=float(t0),
            path_n_dropped=path[:, 0].astype(int), path_qoi=path[:, 1],
            path_target=path[:, 2],
            path_converged=np.ones(len(path), dtype=bool), refit_opt_par=r_theta, refit_qoi=r_q,
            refit_se=r_se, refit_target_value=r_t, refit_converged=ok,
            best_target_value=best, message=text)
