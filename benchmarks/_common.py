"""Helpers shared by the benchmark scripts (not a benchmark itself).

* :func:`best_time` -- the best (min) wall time of a few calls, with
  ``time.perf_counter``;
* :func:`import_vittles` -- vittles 0.173 after the one-line numpy-2 shim
  (``numpy.product = numpy.prod``), or ``None`` with a message, so that a
  script skips its vittles rows when the anchor is not installed;
* :func:`random_arrowhead` -- a random symmetric positive definite
  global/local (arrowhead) matrix at the Criteo shape, as scipy.sparse;
* :func:`text_table` -- a plain-text table from rows of cells.

The scripts put ``benchmarks/`` on ``sys.path`` and ``from _common import
...``.
"""
import time
import warnings
from typing import Any, Callable, Iterable, List, Sequence, Tuple

import numpy as np

__all__ = ["best_time", "import_vittles", "random_arrowhead", "text_table"]


def best_time(fn: Callable[[], Any], repeats: int) -> Tuple[float, Any]:
    """Best (min) wall time of ``repeats`` calls of ``fn``, and the last
    result."""
    best, out = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def import_anchor(name: str):
    """paragami or vittles after the numpy-2 shim, or None (with a message).

    paragami's import replaces some of refold's forward-mode linalg rules
    with 2-d-only versions, so refold's are registered again afterwards.
    """
    import importlib

    import autograd.numpy as anp
    np.product = np.prod
    anp.product = anp.prod
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = importlib.import_module(name)
    except Exception as err:  # pragma: no cover - depends on the environment
        print(f"{name} is not importable ({err}); skipping its rows.")
        return None
    from refold.patterns import autograd_rules
    autograd_rules.register()
    return module


def import_vittles():
    """vittles 0.173 after the numpy-2 shim, or None (with a message)."""
    return import_anchor("vittles")


def import_paragami():
    """paragami 0.42 after the numpy-2 shim, or None (with a message)."""
    return import_anchor("paragami")


def random_arrowhead(num_groups: int = 5000, num_local: int = 2,
                     num_global: int = 14, seed: int = 0):
    """A random SPD arrowhead matrix (globals first) and its indices.

    Returns ``(hessian, global_inds, local_inds)``: a scipy.sparse CSR array
    of shape ``(D, D)``, ``D = num_global + num_groups * num_local``, the
    ``num_global`` global coordinates ``0..g-1`` and the ``(T, m)`` local
    coordinates, group by group.  The global block is made to dominate the
    Schur term, so the matrix is positive definite.
    """
    from refold.sensitivity.arrowhead import ArrowheadHessian

    rng = np.random.default_rng(seed)
    g, T, m = num_global, num_groups, num_local
    a = rng.normal(size=(T, m, m))
    local = a @ a.transpose(0, 2, 1) + np.eye(m)
    cross = rng.normal(size=(T, g, m)) / np.sqrt(T)
    b = rng.normal(size=(g, g))
    glob = b @ b.T + np.eye(g) + np.einsum("tgm,tmn,thn->gh", cross,
                                           np.linalg.inv(local), cross)
    global_inds = np.arange(g)
    local_inds = g + np.arange(T * m).reshape(T, m)
    hessian = ArrowheadHessian(glob, cross, local).to_sparse().tocsr()
    return hessian, global_inds, local_inds


def text_table(head: Sequence[str], body: List[Sequence[str]],
               left: Iterable[int] = (0,)) -> str:
    """A plain-text table: the header, a rule, then one line per row.

    Every cell is a string; columns are as wide as their widest cell,
    separated by two spaces, left-aligned when their index is in ``left``
    and right-aligned otherwise.
    """
    left = set(left)
    rows = [list(head)] + [list(row) for row in body]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(width) if i in left else cell.rjust(width)
                       for i, (cell, width) in enumerate(zip(row, widths)))
             .rstrip() for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
