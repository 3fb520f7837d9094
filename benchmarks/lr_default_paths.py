r"""LR covariances of the logistic GLMM by the calls users write (issue 12).

Rows for ``benchmarks/default_paths_bench.py``: the linear-response
covariance of ``E_q[beta]`` and every ``E_q[u_t]`` (``K + T`` moments) of
the mean-field VB fit of the logistic GLMM
(:class:`refold.models.logistic_glmm.GLMMObjective`, data from
:func:`~refold.models.logistic_glmm.simulate`), computed exactly as a user
writes it, side by side with vittles 0.173:

* the default call, no options::

      LinearResponseCovariances(kl, opt).get_lr_covariance(moments)

* the vittles-compatible route (a porting user keeps it)::

      H = SparseBlockHessian(kl, kl.local_inds).get_hessian(opt)
      LinearResponseCovariances(kl, opt, hessian_at_opt=H) \
          .get_lr_covariance(moments)

  (vittles: its own ``SparseBlockHessian`` and ``LinearResponseCovariances``).

at ``G = 1,500`` groups (``N = 18,600``) and at the Criteo shape (``G =
5,000``, ``N = 61,895``).  refold validates the optimum by default (vittles
does not), so ``opt`` must be a real optimum: it comes from
:func:`refold.models.logistic_glmm.fit`, cached in a temporary directory
(``REFOLD_BENCH_CACHE`` overrides it) so that later runs skip the fit.  The
Criteo default call is also timed *cold*, in a fresh Python process (its
first call: detection, colouring, Hessian, Jacobian, everything; the import
of refold is reported separately).  vittles' default call forms the dense
``D x D`` Hessian and a dense ``K x D`` Jacobian from ``K`` reverse passes;
it is run at ``G = 1,500`` only (at the Criteo shape it does not finish in
two minutes).  Answers agree to ``max |refold - vittles| / max |vittles|``,
printed per row.

Run with ``OPENBLAS_NUM_THREADS=1 python benchmarks/lr_default_paths.py``
(``--fast``: ``G = 300`` and ``G = 1,000`` only, for a smoke test).
"""
import os
import subprocess
import sys
import tempfile
import warnings
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)      # this tree's refold (as the cold process)

from _common import best_time, import_vittles, text_table  # noqa: E402

#: (N, G) of the two shapes of the issue.
SHAPES = ((18600, 1500), (61895, 5000))
#: vittles' default (dense) call is run up to this many groups.
VITTLES_DEFAULT_MAX_GROUPS = 1500

_COLD_SCRIPT = r"""
import sys, time
sys.path.insert(0, {root!r})
start = time.perf_counter()
import autograd.numpy as anp
import numpy as np
from refold import LinearResponseCovariances
from refold.models.logistic_glmm import GLMMObjective, simulate
imported = time.perf_counter() - start
kl = GLMMObjective(simulate({n_obs}, {n_groups}, 5, rng={seed}))
opt = np.load({path!r})
def moments(free_par):
    vb = kl.pattern.fold(free_par, free=True)
    return anp.concatenate([vb["beta_mean"], vb["u_mean"]])
start = time.perf_counter()
lr = LinearResponseCovariances(kl, opt)
cov = lr.get_lr_covariance(moments)
print(time.perf_counter() - start, imported, cov.shape[0])
print(lr.describe())
"""


def glmm_problem(n_obs: int, n_groups: int, seed: int = 0
                 ) -> Tuple[Any, np.ndarray, Callable, str]:
    """``(kl, opt, moments, cache_path)``: the objective, a validated optimum
    (fitted once, then cached) and the moments ``(E[beta], E[u])``."""
    import autograd.numpy as anp

    from refold.models.logistic_glmm import GLMMObjective, fit, simulate
    data = simulate(n_obs, n_groups, 5, rng=seed)
    kl = GLMMObjective(data)
    folder = os.environ.get("REFOLD_BENCH_CACHE", tempfile.gettempdir())
    path = os.path.join(folder, f"refold_glmm_opt_{n_obs}_{n_groups}_"
                                f"{seed}.npy")
    opt = np.load(path) if os.path.exists(path) else None
    if opt is None or opt.shape != (kl.pattern.flat_length(True),):
        result = fit(data, compute_lr=False)
        if not result.optimizer_report.converged:
            raise RuntimeError("the GLMM fit did not converge")
        opt = result.opt_par
        np.save(path, opt)

    def moments(free_par):
        vb = kl.pattern.fold(free_par, free=True)
        return anp.concatenate([vb["beta_mean"], vb["u_mean"]])
    return kl, opt, moments, path


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _cold(n_obs: int, n_groups: int, seed: int, path: str
          ) -> Tuple[float, float, str]:
    """The default call's first run in a fresh process: (call s, import s,
    describe())."""
    script = _COLD_SCRIPT.format(root=_ROOT, n_obs=n_obs, n_groups=n_groups,
                                 seed=seed, path=path)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", script], env=env,
                         capture_output=True, text=True, check=True)
    first, describe = out.stdout.strip().splitlines()[-2:]
    call_s, import_s, _ = first.split()
    return float(call_s), float(import_s), describe


def lr_default_rows(shapes: Sequence[Tuple[int, int]] = SHAPES,
                    seed: int = 0, repeats: int = 3,
                    vittles_default_max_groups: int =
                    VITTLES_DEFAULT_MAX_GROUPS,
                    cold: bool = True,
                    print_table: bool = True) -> List[Dict[str, Any]]:
    """Time the rows; print the table; return the rows as dicts.

    Keys: ``task``, ``groups``, ``refold_s``, ``vittles_s``, ``ratio``
    (vittles / refold), ``max_diff``, ``goal``, ``note`` (``None`` when not
    measured).  refold's rows are the best of ``repeats`` calls in this
    process; vittles' are one call each (they are slow).
    """
    from refold import LinearResponseCovariances
    from refold.sensitivity.sparse_hessian import SparseBlockHessian

    vittles = import_vittles()
    rows: List[Dict[str, Any]] = []
    for n_obs, n_groups in shapes:
        kl, opt, moments, path = glmm_problem(n_obs, n_groups, seed)

        def default():
            lr = LinearResponseCovariances(kl, opt)
            return lr.get_lr_covariance(moments), lr.describe()

        def hessian():
            return SparseBlockHessian(kl, kl.local_inds).get_hessian(opt)

        def given(hess):
            lr = LinearResponseCovariances(kl, opt, hessian_at_opt=hess)
            return lr.get_lr_covariance(moments)

        t_def, (cov_def, how) = best_time(default, repeats)
        t_hess, hess = best_time(hessian, repeats)
        t_given, cov_cmp = best_time(lambda: given(hess), repeats)
        t_cmp = t_hess + t_given
        v_def = v_cmp = v_hess = v_given = cov_vdef = cov_vcmp = None
        if vittles is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                v_hess, v_h = best_time(lambda: vittles.SparseBlockHessian(
                    kl, kl.local_inds).get_hessian(opt), 1)
                v_given, cov_vcmp = best_time(
                    lambda: vittles.LinearResponseCovariances(
                        kl, opt, hessian_at_opt=v_h).get_lr_covariance(
                            moments), 1)
                v_cmp = v_hess + v_given
                if n_groups <= vittles_default_max_groups:
                    v_def, cov_vdef = best_time(
                        lambda: vittles.LinearResponseCovariances(
                            kl, opt).get_lr_covariance(moments), 1)
        truth = cov_vdef if cov_vdef is not None else cov_vcmp
        shape = f"G={n_groups:,} (N={n_obs:,}, K+G={n_groups + 5:,})"
        rows.append(dict(
            task="default LinearResponseCovariances(kl, opt)"
                 ".get_lr_covariance", groups=shape, refold_s=t_def,
            vittles_s=v_def, ratio=None if v_def is None else v_def / t_def,
            max_diff=None if truth is None else _diff(cov_def, truth),
            goal=">= 50x" if n_groups <= 1500 else "< 3 s cold",
            note=how if v_def is not None else
            (how + "; vittles default not run (> 2 min)")))
        if cold and n_groups > 1500:
            call_s, import_s, _ = _cold(n_obs, n_groups, seed, path)
            rows.append(dict(
                task="  same, cold in a fresh process", groups=shape,
                refold_s=call_s, vittles_s=None, ratio=None, max_diff=None,
                goal="< 3 s",
                note=f"first call; 'import refold' adds {import_s:.2f} s"))
        ratio = (lambda a, b: None if a is None else a / b)
        rows.append(dict(
            task="SparseBlockHessian + hessian_at_opt=H route",
            groups=shape, refold_s=t_cmp, vittles_s=v_cmp,
            ratio=ratio(v_cmp, t_cmp),
            max_diff=None if truth is None else _diff(cov_cmp, truth),
            goal=">= 50x, < 2 s", note="sum of the two rows below"))
        rows.append(dict(
            task="  H = SparseBlockHessian(kl, sparsity).get_hessian(opt)",
            groups=shape, refold_s=t_hess, vittles_s=v_hess,
            ratio=ratio(v_hess, t_hess), max_diff=None, goal=">= 2x",
            note="refold: 16 HVPs + 1 probe on one recorded graph"))
        rows.append(dict(
            task="  LinearResponseCovariances(kl, opt, hessian_at_opt=H)"
                 ".get_lr_covariance", groups=shape, refold_s=t_given,
            vittles_s=v_given, ratio=ratio(v_given, t_given),
            max_diff=None, goal=None,
            note="H classified arrowhead -> Schur; J sparse (1 colour)"))
    if print_table:
        print_rows(rows)
    return rows


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_rows(rows: List[Dict[str, Any]]) -> None:
    """Print the rows of :func:`lr_default_rows` as a table."""
    print("LR covariance of E[beta] and every E[u] (logistic GLMM), the "
          "calls as users write them; OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    head = ("call", "shape", "refold s", "vittles s", "ratio", "max diff",
            "goal", "note")
    print(text_table(head, [
        (row["task"], row["groups"], _fmt(row["refold_s"], ".3f"),
         _fmt(row["vittles_s"], ".2f"), _fmt(row["ratio"], ".0f"),
         _fmt(row["max_diff"], ".1e"), row["goal"] or "-", row["note"] or "")
        for row in rows], left=(0, 1, 6, 7)))


def main(argv: List[str]) -> None:
    if "--fast" in argv:
        lr_default_rows(((3000, 300), (10000, 1000)), repeats=1,
                        cold=False)
    else:
        lr_default_rows()


if __name__ == "__main__":
    main(sys.argv[1:])
