r"""Hessian structure: detected, classified, and turned into a solver.

This is what ``solver='auto'`` -- the default of every sensitivity entry
point -- does with an objective ``f`` at a point ``x``:

1. **Detect** the Hessian's sparsity pattern from the code
   (:func:`~refold.sensitivity.sparsity.hessian_sparsity`), unless ``D`` is
   at most :data:`SMALL_DIM` (a dense Hessian is then cheaper than the trace)
   or a Hessian matrix was handed in (its own pattern is used).
2. **Classify** the pattern (:func:`classify_pattern`):

   * ``'dense'`` -- small, or more than :data:`DENSE_FRACTION` of the
     entries possible: the dense Hessian and a dense Cholesky factorisation;
   * ``'arrowhead'`` -- removing a few dense rows (the *globals*) leaves
     connected blocks of at most :data:`MAX_BLOCK` coordinates (the
     *locals*), of one size or of several: ``g + m`` Hessian-vector products
     (one colour per global and per local position, ``m`` the largest block
     size) and a Schur-complement solve
     (:class:`~refold.sensitivity.arrowhead.ArrowheadHessian`, its blocks
     grouped by size);
   * ``'sparse'`` -- any other sparse pattern: one HVP per colour, then a
     sparse factorisation;
   * ``'matrix_free'`` -- when the dense matrix would exceed
     :data:`MAX_DENSE_BYTES` or the pattern is too large: conjugate
     gradients with Hessian-vector products on one recorded graph, never a
     ``D x D`` matrix.
3. **Recover** the Hessian from one HVP per colour on one recorded gradient
   graph, verified against a random probe, so a pattern that the objective
   contradicts (e.g. control flow that branches differently) raises a
   ``ValueError`` naming the coordinate, never a wrong Hessian.

A :class:`HessianStructure` holds the pattern, the classification and the
colouring; it can be reused at later points and saved.  Its
:meth:`~HessianStructure.describe` says what was chosen and why.
"""
from __future__ import annotations

import time
import weakref
from typing import Any, Callable, Mapping, Optional, Tuple

import numpy as np
import scipy.sparse as sp

from refold.sensitivity._arrowhead_blocks import _layout, _local_classes
from refold.sensitivity._arrowhead_split import arrowhead_split
from refold.sensitivity._checks import as_vector as _as_vector
from refold.sensitivity.colouring import (HessianColouring, as_sparsity_pattern,
                                          colour_hessian)
from refold.sensitivity.sparsity import hessian_sparsity

__all__ = ["HessianStructure", "classify_pattern", "hessian_structure",
           "structured_hessian", "auto_hessian_solver", "SMALL_DIM",
           "DENSE_FRACTION", "MAX_BLOCK", "MAX_GLOBALS", "MAX_DENSE_BYTES",
           "STRUCTURE_KINDS"]

#: At most this dimension the Hessian is formed densely without tracing.
SMALL_DIM = 200
#: A pattern with more than this fraction of the entries is dense.
DENSE_FRACTION = 0.1
#: Largest local block of an arrowhead structure.
MAX_BLOCK = 128
#: Most globals of an arrowhead structure (its Schur complement is dense);
#: also at most a fifth of the coordinates.
MAX_GLOBALS = 2000
#: Largest dense ``D x D`` float64 matrix ``'auto'`` will form (2 GiB).
MAX_DENSE_BYTES = 2 ** 31
#: Largest pattern (entries) ``'auto'`` will recover and factorise.
MAX_SPARSE_NNZ = 50_000_000

STRUCTURE_KINDS = ("dense", "arrowhead", "sparse", "matrix_free")


def _blocks_text(local_inds: Any, counts: bool) -> str:
    """``'3,000 blocks of 2 and 2,000 blocks of 3'`` (``counts``) or
    ``'blocks of 2 and 3'``; past four sizes, their range."""
    classes = _local_classes(local_inds)
    sizes = [c.shape[1] for c in classes]
    total = sum(c.shape[0] for c in classes)
    if len(classes) > 4:
        span = f"{len(sizes)} sizes, {min(sizes)} to {max(sizes)}"
        return f"{total:,} blocks of {span}" if counts else \
            f"blocks of {span}"
    if counts:
        parts = [f"{c.shape[0]:,} block{'' if c.shape[0] == 1 else 's'} of "
                 f"{c.shape[1]}" for c in classes]
    else:
        parts = [str(m) for m in sizes]
    text = parts[0] if len(parts) == 1 else \
        f"{', '.join(parts[:-1])} and {parts[-1]}"
    return text if counts else f"blocks of {text}"


def classify_pattern(pattern: Any) -> Tuple[str, Optional[np.ndarray],
                                            Optional[np.ndarray], str]:
    r"""Classify a symmetric Hessian pattern for ``solver='auto'``.

    Parameters
    ----------
    pattern : scipy.sparse matrix or array_like, shape (D, D)
        Possible nonzeros (symmetric).

    Returns
    -------
    kind : {'dense', 'arrowhead', 'sparse', 'matrix_free'}
    global_inds : ndarray of int, shape (g,), or None
    local_inds : ndarray of int, shape (T, m), tuple of such, or None
        For ``'arrowhead'`` only: blocks of one size as a ``(T, m)`` array;
        blocks of unequal sizes as a tuple of ``(T_k, m_k)`` arrays, one per
        size (increasing), the form
        :meth:`~refold.sensitivity.arrowhead.ArrowheadHessian.from_sparse`
        takes.
    reason : str
        Why, in a few words.
    """
    return _classify(as_sparsity_pattern(pattern, name="pattern"))


def _classify(pattern: sp.csr_matrix):
    """:func:`classify_pattern` of a validated pattern."""
    dim, nnz = pattern.shape[0], pattern.nnz
    fits_dense = 8 * dim * dim <= MAX_DENSE_BYTES
    if dim <= SMALL_DIM:
        return "dense", None, None, f"D = {dim} <= {SMALL_DIM}"
    if nnz > DENSE_FRACTION * dim * dim:
        if fits_dense:
            return "dense", None, None, (f"{100 * nnz / dim ** 2:.0f}% of "
                                         f"the entries can be nonzero")
        return "matrix_free", None, None, (
            f"dense pattern and a {dim} x {dim} matrix would exceed "
            f"{MAX_DENSE_BYTES / 2 ** 30:.0f} GiB")
    glob, loc, reason = arrowhead_split(pattern, MAX_BLOCK, MAX_GLOBALS)
    if glob is not None:
        return "arrowhead", glob, loc, (f"{len(glob)} globals couple to "
                                        f"all; the rest in "
                                        f"{_blocks_text(loc, False)}")
    if nnz > MAX_SPARSE_NNZ:
        return "matrix_free", None, None, (f"{nnz:,} possible nonzeros "
                                           f"exceed {MAX_SPARSE_NNZ:,}")
    return "sparse", None, None, reason


class HessianStructure:
    r"""The structure of a Hessian: pattern, classification, colouring.

    Build it with :func:`hessian_structure` (detected from an objective) or
    :meth:`from_pattern` (a given pattern or sparse Hessian); reuse it at
    other points (``structure=`` of the entry points, or
    :func:`structured_hessian`) and :meth:`save` it.

    Attributes
    ----------
    kind : {'dense', 'arrowhead', 'sparse', 'matrix_free'}
    dim : int
    pattern : scipy.sparse.csr_matrix of bool or None
        ``None`` when not traced (``D <= SMALL_DIM``).
    global_inds, local_inds : ndarray of int or None
        The arrowhead split (``'arrowhead'`` only); ``local_inds`` is a
        ``(T, m)`` array, or for blocks of unequal sizes a tuple of
        ``(T_k, m_k)`` arrays, one per size (see :func:`classify_pattern`).
    reason : str
        Why this kind was chosen.
    source : str
        ``'detected'``, ``'given'``, ``'small'``, or ``'requested'`` (the
        caller asked for the dense Hessian: ``refit(..., hvp=False)``).
    seconds : float
        Time spent detecting and classifying.
    """

    def __init__(self, kind: str, dim: int, pattern: Optional[sp.csr_matrix]
                 = None, global_inds: Any = None, local_inds: Any = None,
                 reason: str = "", source: str = "given",
                 seconds: float = 0.0, *, num_products: Optional[int] = None,
                 solver_name: Optional[str] = None):
        if kind not in STRUCTURE_KINDS:
            raise ValueError(f"kind must be one of {STRUCTURE_KINDS}; got "
                             f"{kind!r}.")
        self.kind, self.dim, self.pattern = kind, int(dim), pattern
        self.global_inds = None if global_inds is None else np.asarray(
            global_inds, dtype=np.int64)
        self.local_inds = None if local_inds is None else _layout(
            [c.astype(np.int64) for c in _local_classes(local_inds)])
        self.reason, self.source, self.seconds = reason, source, seconds
        self._colouring: Optional[HessianColouring] = None
        self._num_products, self._solver_name = num_products, solver_name
        #: How a Hessian the caller gave is named (``describe()``).
        self.given_name = "the Hessian"

    @classmethod
    def from_pattern(cls, pattern: Any, *, source: str = "given"
                     ) -> "HessianStructure":
        """Classify a pattern (or the nonzeros of a sparse Hessian)."""
        start = time.perf_counter()
        if source != "detected":   # a detected pattern is canonical already
            pattern = as_sparsity_pattern(pattern, name="pattern")
        kind, glob, loc, reason = _classify(pattern)
        return cls(kind, pattern.shape[0], pattern, glob, loc, reason,
                   source, time.perf_counter() - start)

    @property
    def colouring(self) -> Optional[HessianColouring]:
        """The colouring used to recover the Hessian (computed once)."""
        if self._colouring is None and self.pattern is not None:
            if self.kind == "arrowhead":
                # One colour per global, one per position within a block:
                # the g + m products of direct recovery (m the largest
                # block), without a search.
                g = len(self.global_inds)
                colours = np.empty(self.dim, dtype=np.int64)
                colours[self.global_inds] = np.arange(g)
                for li in _local_classes(self.local_inds):
                    colours[li] = g + np.arange(li.shape[1])
                self._colouring = HessianColouring(self.pattern, colours,
                                                   self.global_inds)
            elif self.kind == "sparse":
                self._colouring = colour_hessian(self.pattern)
        return self._colouring

    @property
    def num_hvps(self) -> int:
        """Hessian-vector products per Hessian (the probe included); 0 on
        the matrix-free path, ``D`` for a dense Hessian."""
        if self._num_products is not None:
            return self._num_products
        if self.kind == "dense":
            return self.dim
        if self.kind == "matrix_free":
            return 0
        if self.colouring is None:    # an arrowhead given without a pattern
            return len(self.global_inds) + max(
                c.shape[1] for c in _local_classes(self.local_inds)) + 1
        return self.colouring.num_colours + 1

    @property
    def solver_name(self) -> str:
        """The solver this structure calls for."""
        if self._solver_name is not None:
            return self._solver_name
        return {"dense": "dense Cholesky", "arrowhead": "Schur complement",
                "sparse": "sparse factorisation",
                "matrix_free": "conjugate gradients"}[self.kind]

    def describe(self) -> str:
        """One line: the structure, the Hessian's cost and the solver."""
        if self.kind == "arrowhead":
            what = (f"arrowhead: {len(self.global_inds):,} globals, "
                    f"{_blocks_text(self.local_inds, True)}")
        elif self.kind == "sparse":
            what = f"sparse: {self.pattern.nnz:,} possible nonzeros"
        else:
            what = f"{self.kind}: D = {self.dim:,}"
        if self.source == "given":
            cost = f"{self.given_name} given"
        else:
            cost = ("HVPs per product" if self.kind == "matrix_free" else
                    f"{self.num_hvps:,} reverse passes" if self.kind ==
                    "dense" else f"{self.num_hvps:,} HVPs")
        return f"{what}; {cost}; {self.solver_name} ({self.reason})"

    def __repr__(self) -> str:
        return f"HessianStructure({self.describe()!r})"

    # -- saving --------------------------------------------------------
    def save(self, path: Any) -> None:
        """Save to a ``.npz`` file (pattern, kind and split)."""
        coo = (self.pattern.tocoo() if self.pattern is not None
               else sp.coo_matrix((self.dim, self.dim)))
        local = (self.local_inds if self.local_inds is not None
                 else np.zeros((0, 0), np.int64))
        classes = _local_classes(local)
        if len(classes) > 1:       # unequal blocks: flat, with their shapes
            local = np.concatenate([c.ravel() for c in classes])
        np.savez(path, kind=self.kind, dim=self.dim, row=coo.row,
                 col=coo.col, has_pattern=self.pattern is not None,
                 global_inds=(self.global_inds if self.global_inds is not
                              None else np.zeros(0, np.int64)),
                 local_inds=local,
                 local_shapes=np.array([c.shape for c in classes]),
                 reason=self.reason, source=self.source)

    @classmethod
    def load(cls, path: Any) -> "HessianStructure":
        """Load a structure saved by :meth:`save`."""
        with np.load(path, allow_pickle=False) as data:
            dim = int(data["dim"])
            pattern = None
            if bool(data["has_pattern"]):
                pattern = sp.csr_matrix(
                    (np.ones(len(data["row"]), dtype=bool),
                     (data["row"], data["col"])), shape=(dim, dim))
            kind = str(data["kind"])
            arrow = kind == "arrowhead"
            local = data["local_inds"]
            if local.ndim == 1:    # unequal blocks, saved flat
                shapes = data["local_shapes"]
                ends = np.cumsum(shapes[:, 0] * shapes[:, 1])[:-1]
                local = tuple(part.reshape(shape) for part, shape in
                              zip(np.split(local, ends), shapes))
            return cls(kind, dim, pattern,
                       data["global_inds"] if arrow else None,
                       local if arrow else None,
                       str(data["reason"]), str(data["source"]))


def hessian_structure(fun: Callable, x: Any, *args: Any) -> HessianStructure:
    r"""Detect and classify the Hessian structure of ``fun`` at ``x``.

    Parameters
    ----------
    fun : callable
        Scalar objective ``fun(x, *args)`` written with ``autograd.numpy``.
    x : array_like, shape (D,)
    *args
        Further arguments of ``fun``.

    Returns
    -------
    HessianStructure
        For ``D <= SMALL_DIM`` the Hessian is taken dense without tracing.

    Examples
    --------
    >>> import autograd.numpy as np
    >>> def f(x):  # 2 globals, 300 blocks of 2 locals
    ...     loc = x[2:].reshape(300, 2)
    ...     return np.sum(np.exp(loc[:, 0] * loc[:, 1] + x[0] * x[1]))
    >>> hessian_structure(f, np.zeros(602)).describe()
    'arrowhead: 2 globals, 300 blocks of 2; 5 HVPs; Schur complement (2 globals couple to all; the rest in blocks of 2)'
    """
    if not callable(fun):
        raise TypeError(f"fun must be callable; got {type(fun).__name__}")
    x_arr = _as_vector(x, "x")
    dim = int(x_arr.size)
    if dim <= SMALL_DIM:
        return HessianStructure("dense", dim, reason=f"D = {dim} <= "
                                f"{SMALL_DIM}", source="small")
    start = time.perf_counter()
    pattern = hessian_sparsity(fun, x_arr, *args)
    out = HessianStructure.from_pattern(pattern, source="detected")
    out.seconds = time.perf_counter() - start
    return out


def structured_hessian(fun: Callable, x: np.ndarray, *args: Any,
                       structure: HessianStructure, verify: bool = True):
    r"""The Hessian of ``fun`` at ``x`` in the form ``structure`` calls for.

    Returns
    -------
    numpy.ndarray (``'dense'``), ArrowheadHessian (``'arrowhead'``) or
    scipy.sparse.csr_matrix (``'sparse'``); ``None`` for ``'matrix_free'``.
    """
    from refold.sensitivity.arrowhead import ArrowheadHessian
    from refold.sensitivity.hvp import dense_hessian
    from refold.sensitivity.sparse_hessian import sparse_hessian
    if structure.dim != np.size(x):
        raise ValueError(f"structure is for dimension {structure.dim} but x "
                         f"has {np.size(x)} entries.")
    if structure.kind == "dense":
        return dense_hessian(fun, x, *args)
    if structure.kind == "matrix_free":
        return None
    hessian = sparse_hessian(fun, x, None, *args,
                             colouring=structure.colouring, verify=verify)
    if structure.kind == "arrowhead":
        return ArrowheadHessian.from_sparse(hessian, structure.global_inds,
                                            structure.local_inds)
    return hessian


# Structures detected for an objective, reused by later calls with the same
# objective and argument shapes (the probe of every recovered Hessian checks
# the reuse; a contradicted structure is detected anew).
_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _args_key(x: np.ndarray, args: tuple) -> tuple:
    """What a cached structure must match: the parameter's size and each
    further argument's shape and type (values may differ: the probe of
    every recovered Hessian checks the pattern)."""
    def describe(arg):
        kind = arg.dtype.str if isinstance(arg, np.ndarray) else \
            type(arg).__name__
        return np.shape(arg), kind
    return (np.size(x),) + tuple(describe(arg) for arg in args)


def _cache_get(key: Any, args_key: tuple) -> Optional[HessianStructure]:
    try:
        return _CACHE.get(key, {}).get(args_key)
    except TypeError:  # not weak-referenceable (e.g. a bound method)
        return None


def _cache_put(key: Any, args_key: tuple, structure: HessianStructure
               ) -> None:
    try:
        _CACHE.setdefault(key, {})[args_key] = structure
    except TypeError:
        pass


def cached_structure(fun: Callable, x: np.ndarray, args: tuple = (), *,
                     key: Any = None, fresh: bool = False
                     ) -> HessianStructure:
    """The structure cached for ``key`` (default ``fun``) and the argument
    shapes, else (or with ``fresh=True``: the cached one was contradicted)
    detected from ``fun`` at ``x`` and cached.  ``key`` lets a caller that
    wraps the user's objective cache under the user's function."""
    key = fun if key is None else key
    args_key = _args_key(x, args)
    if not fresh:
        cached = _cache_get(key, args_key)
        if cached is not None:
            return cached
    structure = hessian_structure(fun, x, *args)
    _cache_put(key, args_key, structure)
    return structure


def is_contradiction(err: BaseException) -> bool:
    """Whether ``err`` is the probe of a recovered Hessian finding couplings
    outside the structure's pattern (the structure must be re-detected)."""
    return isinstance(err, ValueError) and "couples coordinates" in str(err)


def _hessian_with_cache(fun, x, args, structure, *, key=None):
    """(structure, Hessian): a given structure, else a cached one for
    ``key`` (default ``fun``; re-detected if the probe contradicts it),
    else detected."""
    if structure is not None:
        return structure, structured_hessian(fun, x, *args,
                                             structure=structure)
    cached = _cache_get(fun if key is None else key, _args_key(x, args))
    if cached is not None:
        try:
            return cached, structured_hessian(fun, x, *args,
                                              structure=cached)
        except ValueError as err:
            if not is_contradiction(err):
                raise
    structure = cached_structure(fun, x, args, key=key, fresh=True)
    return structure, structured_hessian(fun, x, *args, structure=structure)


_KIND_OF = {"dense": "cholesky", "arrowhead": "arrowhead", "sparse": "sparse",
            "matrix_free": "cg"}
_OPTIONS_OF = {"cholesky": ("on_failure", "name"), "arrowhead":
               ("on_failure",), "sparse": ("on_failure", "name"),
               "cg": ("cg_opts", "preconditioner")}


def _solver_for(kind: str, hessian: Any, hvp: Optional[Callable], dim: int,
                options: Mapping):
    from refold.sensitivity.solvers import get_solver
    opts = {k: v for k, v in options.items() if k in _OPTIONS_OF[kind]}
    if kind == "cg":
        return get_solver("cg", hvp=hvp, dim=dim, **opts)
    return get_solver(kind, hessian=hessian, **opts)


def split_structure(dim: int, global_inds: Any, local_inds: Any
                    ) -> HessianStructure:
    """The arrowhead structure of a known split (indices already checked):
    its pattern -- dense global rows, full local blocks -- and so its
    ``g + m`` colouring (``m`` the largest block)."""
    gi = np.asarray(global_inds, dtype=np.int64)
    classes = _local_classes(local_inds)
    rows = [np.repeat(gi, dim), np.tile(np.arange(dim), gi.size)]
    cols = rows[::-1]
    for li in classes:                                # a loop over the sizes
        m = li.shape[1]
        rows.append(np.repeat(li, m, axis=1).ravel())
        cols.append(np.tile(li, (1, m)).ravel())
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    pattern = sp.csr_matrix((np.ones(rows.size, dtype=bool), (rows, cols)),
                            shape=(dim, dim))
    pattern.sum_duplicates()
    pattern.sort_indices()
    return HessianStructure("arrowhead", dim, pattern, gi, local_inds,
                            "the global/local split was given", "given")


def structure_of_matrix(hessian: Any) -> HessianStructure:
    """The structure of a Hessian handed in by the user."""
    from refold.sensitivity.arrowhead import ArrowheadHessian
    if isinstance(hessian, ArrowheadHessian):
        return HessianStructure("arrowhead", hessian.dim, None,
                                hessian.global_inds,
                                hessian.local_inds_by_size,
                                "an ArrowheadHessian was given", "given")
    if sp.issparse(hessian):
        return HessianStructure.from_pattern(hessian)
    dim = np.shape(hessian)[0]
    return HessianStructure("dense", dim, reason="a dense matrix was given",
                            source="given")


def auto_hessian_solver(fun: Optional[Callable], x: np.ndarray,
                        args: tuple = (), *, hessian: Any = None,
                        structure: Optional[HessianStructure] = None,
                        options: Optional[Mapping] = None):
    r"""The ``solver='auto'`` solver for the Hessian of ``fun`` at ``x``.

    Parameters
    ----------
    fun : callable or None
        The objective (``None`` only when ``hessian`` is given).
    x : numpy.ndarray, shape (D,)
    args : tuple
        Further arguments of ``fun``.
    hessian : array_like, scipy.sparse matrix or ArrowheadHessian, optional
        A Hessian the user computed: its own structure is used (a sparse
        arrowhead matrix is solved by Schur complement).
    structure : HessianStructure, optional
        Reuse a structure (skips detection).
    options : dict, optional
        ``on_failure`` (factorising solvers), ``name`` (how a given
        ``hessian`` is named in errors), ``cg_opts``, ``preconditioner``
        (matrix-free).

    Returns
    -------
    solver : LinearSolver
        ``solver.info['structure']`` is the :class:`HessianStructure`.
    matrix : ndarray, scipy.sparse matrix, ArrowheadHessian or None
        The Hessian as formed (``None`` on the matrix-free path).
    structure : HessianStructure
    """
    from refold.sensitivity.arrowhead import ArrowheadHessian
    from refold.sensitivity.hvp import make_hvp_at
    options = dict(options or {})
    dim = int(np.size(x))
    hvp = None
    if hessian is not None:
        structure = structure_of_matrix(hessian)
        structure.given_name = options.get("name", "the Hessian")
        matrix = hessian
        if structure.kind == "arrowhead" and not isinstance(
                hessian, ArrowheadHessian):
            matrix = ArrowheadHessian.from_sparse(
                hessian, structure.global_inds, structure.local_inds,
                name=options.get("name", "hessian"))
        elif structure.kind in ("dense", "matrix_free") and sp.issparse(
                hessian):
            structure.kind = "sparse"  # the user already holds it sparse
    else:
        if structure is not None and structure.dim != dim:
            raise ValueError(f"structure is for dimension {structure.dim} "
                             f"but the parameter has length {dim}.")
        structure, matrix = _hessian_with_cache(fun, x, args, structure)
        if matrix is None:
            hvp = make_hvp_at(fun, x, *args)
    kind = _KIND_OF[structure.kind]
    solver = _solver_for(kind, matrix, hvp, dim, options)
    solver.info["structure"] = structure
    return solver, matrix, structure


def describe_solver(solver: Any) -> str:
    """One line for a solver: its structure's ``describe()``
    when ``'auto'`` chose it, else the kind the caller chose."""
    structure = getattr(solver, "info", {}).get("structure")
    if structure is not None:
        return structure.describe()
    return f"solver {getattr(solver, 'kind', 'user')!r} (chosen by the caller)"

