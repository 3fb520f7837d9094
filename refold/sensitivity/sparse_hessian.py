r"""Sparse and block-structured Hessians from a few Hessian-vector products.

* :func:`sparse_hessian` -- any symmetric sparsity pattern, recovered by
  colouring (:mod:`refold.sensitivity.colouring`), one Hessian-vector product
  (HVP) per colour, and verified against one random probe.
* :class:`SparseBlockHessian` -- vittles 0.173's name and methods for
  objectives whose *local* coordinates form equally-sized blocks that do not
  interact with each other (the Hessian's local-local part is block
  diagonal), while *global* coordinates may interact with everything
  (an arrowhead Hessian).  Its block-diagonal part costs one HVP per local
  coordinate (the direction is the indicator of the k-th local coordinate of
  every block at once) and its global rows/columns one HVP per global
  coordinate; the blocks are assembled with vectorised indexing, never a
  Python loop over blocks.

All HVPs of one call sweep one recorded gradient graph
(:func:`refold.sensitivity.hvp.make_hvp_at`): the objective and its gradient
are traced once per call, then each product is one backward pass.

Unlike vittles, the structure is checked: a random probe direction is
multiplied by the assembled Hessian and by the true Hessian, and a
``ValueError`` names the coordinate where they disagree when the objective
couples coordinates the structure claims are independent.
"""
from typing import Any, Callable, NamedTuple, Tuple, Union

import numpy as onp
import scipy.sparse as sp

from refold.sensitivity._checks import check_int, finite_array
from refold.sensitivity.colouring import (HessianColouring,
                                          as_sparsity_pattern,
                                          colour_hessian, recover_hessian,
                                          verify_hessian_probe)
from refold.sensitivity._hessian_args import (_as_index_array, _as_rng,
                                              _check_finite_product)
from refold.sensitivity.hvp import make_hvp_at

__all__ = ["sparse_hessian", "SparseBlockHessian", "ArrowheadBlocks"]


def sparse_hessian(fun: Callable, x: Any, sparsity: Any = None, *args: Any,
                   colouring: Union[None, HessianColouring, Any] = None,
                   verify: bool = True, rng: Any = None,
                   return_info: bool = False):
    r"""Sparse Hessian of a scalar objective from coloured HVPs.

    Parameters
    ----------
    fun : callable
        Scalar objective ``fun(x, *args)``, twice differentiable by autograd.
    x : array_like, shape (D,)
        Point at which to take the Hessian.
    sparsity : scipy.sparse matrix, array_like of bool or HessianStructure, optional
        Symmetric pattern of the Hessian's possible nonzeros.  ``None``
        (default): taken from ``colouring`` when it is a
        :class:`HessianColouring`, otherwise detected from ``fun`` by
        :func:`~refold.sensitivity.sparsity.hessian_sparsity` (the probe
        then also guards against control flow that branches differently).
    *args
        Further arguments of ``fun``.
    colouring : HessianColouring or array_like of int, optional
        A colouring from :func:`~refold.sensitivity.colouring.colour_hessian`
        (reuse it across points) or column colours to use (checked for
        structural orthogonality).  By default the pattern is coloured with
        the symmetric-aware greedy colouring.
    verify : bool, optional
        Check the result against one HVP in a random direction (default
        True).  Costs one extra backward sweep.
    rng : None, int or numpy.random.Generator, optional
        Source of the probe direction.  ``None`` uses a fixed seed, so
        results are reproducible.
    return_info : bool, optional
        Also return a dict with ``num_hvps`` (products used, probe included),
        ``num_colours``, ``colouring`` and ``probe_max_error``.

    Returns
    -------
    hessian : scipy.sparse.csr_matrix, shape (D, D)
        The Hessian on the pattern, exactly symmetric.
    info : dict
        Only when ``return_info`` is True.

    Raises
    ------
    ValueError
        Bad ``x``/``sparsity``/``colouring``; a non-finite HVP; or (with
        ``verify``) when the objective couples coordinates the pattern says
        are independent -- the message names the offending coordinate.

    Examples
    --------
    >>> import autograd.numpy as np
    >>> import numpy as onp
    >>> f = lambda x: np.sum(x ** 4) + np.sum(x[1:] * x[:-1])
    >>> pattern = (onp.abs(onp.subtract.outer(onp.arange(5), onp.arange(5)))
    ...            <= 1)
    >>> sparse_hessian(f, onp.ones(5), pattern).toarray()[0, :2]
    array([12.,  1.])
    """
    x = finite_array(x, "x", vector=True)
    dim = x.shape[0]
    if isinstance(colouring, HessianColouring):
        if colouring.dim != dim:
            raise ValueError(f"colouring is for dimension {colouring.dim} "
                             f"but x has length {dim}.")
        if sparsity is not None:
            pattern = as_sparsity_pattern(sparsity, dim)
            if (pattern != colouring.pattern).nnz:
                raise ValueError("colouring was built for a different "
                                 "sparsity pattern than sparsity.")
    else:
        if sparsity is None:
            if colouring is not None:
                raise ValueError("colours given as an array need their "
                                 "sparsity pattern; pass sparsity too.")
            from refold.sensitivity.sparsity import hessian_sparsity
            sparsity = hessian_sparsity(fun, x, *args)
        elif hasattr(sparsity, "pattern") and hasattr(sparsity, "kind"):
            colouring = sparsity.colouring if colouring is None else \
                colouring
            sparsity = sparsity.pattern
        as_sparsity_pattern(sparsity, dim)
        if not isinstance(colouring, HessianColouring):
            colouring = colour_hessian(sparsity, colours=colouring)
    rng = _as_rng(rng)
    if not isinstance(verify, (bool, onp.bool_)):
        raise TypeError(f"verify must be a bool; got {verify!r}.")

    hvp_at = make_hvp_at(fun, x, *args)
    products = onp.empty((dim, colouring.num_colours))
    for colour in range(colouring.num_colours):
        products[:, colour] = hvp_at(
            (colouring.colours == colour).astype(float))
        _check_finite_product(products[:, colour], f"colour {colour}", "x")
    hessian = recover_hessian(colouring, products)
    num_hvps = colouring.num_colours
    max_error = None
    if verify:
        probe = rng.standard_normal(dim)
        true_product = hvp_at(probe)
        num_hvps += 1
        _check_finite_product(true_product, "the probe", "x")
        max_error = verify_hessian_probe(hessian @ probe, true_product,
                                         "the sparsity pattern")
    if return_info:
        return hessian, {"num_hvps": num_hvps,
                         "num_colours": colouring.num_colours,
                         "colouring": colouring,
                         "probe_max_error": max_error}
    return hessian


class ArrowheadBlocks(NamedTuple):
    r"""The blocks of an arrowhead Hessian, stacked.

    With ``g`` globals, ``T`` blocks of ``m`` locals:

    * ``global_block`` (g, g): :math:`H[G, G]`, ``G = global_inds``;
    * ``cross_blocks`` (T, g, m): ``cross_blocks[t] = H[G, L_t]``;
    * ``local_blocks`` (T, m, m): ``local_blocks[t] = H[L_t, L_t]``,
      ``L_t = local_inds[t]``;
    * ``global_inds`` (g,), ``local_inds`` (T, m): where the blocks live in
      the full vector.
    """
    global_block: onp.ndarray
    cross_blocks: onp.ndarray
    local_blocks: onp.ndarray
    global_inds: onp.ndarray
    local_inds: onp.ndarray


class SparseBlockHessian:
    r"""Block-sparse (arrowhead) Hessians from one HVP per coordinate type.

    The objective is expected to be of the form

    .. math::
        f(x) = f_0(x_G) + \sum_{t=1}^{T} f_t(x_{L_t}, x_G)

    with local blocks :math:`L_t` (rows of ``sparsity_array``, all of size
    ``m``) that do not interact with one another, and global coordinates
    :math:`G` (by default, every index not in ``sparsity_array``).  The
    local-local Hessian is then block diagonal.

    Parameters
    ----------
    objective_function : callable
        ``objective_function(opt_par) -> float``, twice differentiable by
        autograd (reverse mode).
    sparsity_array : array_like of int, shape (T, m)
        Row ``t`` holds the indices of block ``t``'s local coordinates.
        Indices must be unique and non-negative (and, at evaluation, less
        than ``len(opt_par)``).

    Attributes
    ----------
    num_hvps : int
        Hessian-vector products used by the last ``get_*`` call, the
        verification probe included.

    Raises
    ------
    TypeError, ValueError
        When ``objective_function`` is not callable or ``sparsity_array`` is
        not a 2-d array of unique non-negative integers.

    Examples
    --------
    >>> import autograd.numpy as np
    >>> import numpy as onp
    >>> def f(x):  # 3 blocks of 2 locals, 1 global at index 6
    ...     loc = x[:6].reshape(3, 2)
    ...     return np.sum(np.exp(loc[:, 0] * loc[:, 1] + x[6])) + x[6] ** 2
    >>> sbh = SparseBlockHessian(f, onp.arange(6).reshape(3, 2))
    >>> h = sbh.get_hessian(onp.zeros(7))
    >>> h.shape, sbh.num_hvps
    ((7, 7), 4)
    """

    def __init__(self, objective_function: Callable, sparsity_array: Any):
        if not callable(objective_function):
            raise TypeError(f"objective_function must be callable; got "
                            f"{type(objective_function).__name__}.")
        local_inds = _as_index_array(sparsity_array, "sparsity_array", 2)
        if local_inds.size == 0:
            raise ValueError(f"sparsity_array must hold at least one index; "
                             f"got shape {local_inds.shape}.")
        self._fun = objective_function
        self._local_inds = local_inds
        self._num_blocks, self._block_size = local_inds.shape
        self.num_hvps = 0

    # ----------------------------------------------------------- helpers
    def _opt_par(self, opt_par: Any) -> onp.ndarray:
        opt_par = finite_array(opt_par, "opt_par", vector=True)
        top = int(self._local_inds.max())
        if top >= opt_par.shape[0]:
            raise ValueError(f"sparsity_array holds index {top} but opt_par "
                             f"has length {opt_par.shape[0]}.")
        return opt_par

    def _global_inds(self, dim: int, global_inds: Any) -> onp.ndarray:
        if global_inds is None:
            is_global = onp.ones(dim, dtype=bool)
            is_global[self._local_inds.ravel()] = False
            return onp.flatnonzero(is_global)
        global_inds = _as_index_array(global_inds, "global_inds", 1)
        if global_inds.size and global_inds.max() >= dim:
            raise ValueError(f"global_inds holds index "
                             f"{int(global_inds.max())} but opt_par has "
                             f"length {dim}.")
        common = onp.intersect1d(global_inds, self._local_inds)
        if len(common):
            raise ValueError(f"global_inds and sparsity_array must be "
                             f"disjoint; both hold {common[:5].tolist()}.")
        return global_inds

    def _local_blocks(self, hvp_at, dim, print_every) -> onp.ndarray:
        """(T, m, m) local blocks from one HVP per local coordinate."""
        products = onp.empty((dim, self._block_size))
        for k in range(self._block_size):
            if print_every > 0 and k % print_every == 0:
                print(f"Local coordinate {k} of {self._block_size}.")
            direction = onp.zeros(dim)
            direction[self._local_inds[:, k]] = 1.0
            products[:, k] = hvp_at(direction)
            _check_finite_product(products[:, k], f"local coordinate {k}")
        blocks = products[self._local_inds]  # [t, a, k] = H[L_ta, L_tk]
        return 0.5 * (blocks + blocks.transpose(0, 2, 1))

    def _global_products(self, hvp_at, dim, global_inds,
                         print_every) -> onp.ndarray:
        """(D, g) columns of H at the global coordinates."""
        products = onp.empty((dim, len(global_inds)))
        for count, index in enumerate(global_inds):
            if print_every > 0 and count % print_every == 0:
                print(f"Global index {count} of {len(global_inds)}.")
            direction = onp.zeros(dim)
            direction[index] = 1.0
            products[:, count] = hvp_at(direction)
            _check_finite_product(products[:, count],
                                  f"global index {index}")
        return products

    def _checked(self, opt_par: Any, print_every: Any):
        """The checked ``opt_par`` and ``print_every`` of a public call."""
        print_every = check_int(print_every, "print_every")
        return self._opt_par(opt_par), print_every

    def _block_coo(self, local_blocks, dim) -> Tuple[onp.ndarray, ...]:
        shape = local_blocks.shape
        rows = onp.broadcast_to(self._local_inds[:, :, None], shape)
        cols = onp.broadcast_to(self._local_inds[:, None, :], shape)
        return local_blocks.ravel(), rows.ravel(), cols.ravel()

    def _global_coo(self, global_block, cross, global_inds):
        """COO triplets of :math:`H[G, G]` (``global_block``, (g, g)) and of
        :math:`H[L, G]`, :math:`H[G, L]` (``cross[l, i] = H[local_l,
        global_i]``)."""
        local = self._local_inds.ravel()
        g = len(global_inds)
        vals = onp.concatenate([global_block.ravel(), cross.ravel(),
                                cross.ravel()])
        rows = onp.concatenate([
            onp.repeat(global_inds, g), onp.repeat(local, g),
            onp.tile(global_inds, len(local))])
        cols = onp.concatenate([
            onp.tile(global_inds, g), onp.tile(global_inds, len(local)),
            onp.repeat(local, g)])
        return vals, rows, cols

    def _verify(self, opt_par, hvp_at, matvec, support, rows, what) -> None:
        """Probe on ``support``; compare on ``rows``."""
        probe = onp.zeros(opt_par.shape[0])
        probe[support] = onp.random.default_rng(0).standard_normal(
            len(support))
        true_product = hvp_at(probe)
        self.num_hvps += 1
        _check_finite_product(true_product, "the probe")
        verify_hessian_probe(matvec(probe)[rows], true_product[rows], what)

    # ------------------------------------------------------ public API
    def get_block_hessian(self, opt_par: Any, print_every: int = 0,
                          verify: bool = True) -> sp.coo_matrix:
        r"""The block-diagonal local part of the Hessian.

        Parameters
        ----------
        opt_par : array_like, shape (D,)
            Point at which to take the Hessian.
        print_every : int, optional
            Print progress every this many HVPs (0: silent).
        verify : bool, optional
            Check, with one random probe on the local coordinates, that the
            local blocks do not interact (default True).

        Returns
        -------
        scipy.sparse.coo_matrix, shape (D, D)
            :math:`H[L_t, L_t]` for every block ``t``; zero elsewhere.
            Uses ``m`` HVPs (plus one probe).

        Raises
        ------
        ValueError
            Bad ``opt_par``, or (with ``verify``) when local coordinates of
            different blocks interact.
        """
        opt_par, print_every = self._checked(opt_par, print_every)
        dim = opt_par.shape[0]
        hvp_at = make_hvp_at(self._fun, opt_par)
        blocks = self._local_blocks(hvp_at, dim, print_every)
        self.num_hvps = self._block_size
        vals, rows, cols = self._block_coo(blocks, dim)
        hessian = sp.coo_matrix((vals, (rows, cols)), shape=(dim, dim))
        if verify:
            local = self._local_inds.ravel()
            self._verify(opt_par, hvp_at, hessian.tocsr().dot, local, local,
                         "sparsity_array (blocks that do not interact)")
        if print_every > 0:
            print("Done differentiating.")
        return hessian

    def get_global_hessian(self, opt_par: Any, global_inds: Any = None,
                           print_every: int = 0) -> sp.coo_matrix:
        r"""The global rows and columns of the Hessian.

        Parameters
        ----------
        opt_par : array_like, shape (D,)
        global_inds : array_like of int, optional
            Global coordinates; by default every index not in
            ``sparsity_array``.  Must be disjoint from it.
        print_every : int, optional
            Print progress every this many HVPs (0: silent).

        Returns
        -------
        scipy.sparse.coo_matrix, shape (D, D)
            :math:`H[G, G]` (symmetrised), :math:`H[G, L]` and
            :math:`H[L, G]` for all locals ``L``; zero elsewhere.  Uses one
            HVP per global coordinate, which gives these entries exactly, so
            there is nothing to verify.
        """
        opt_par, print_every = self._checked(opt_par, print_every)
        dim = opt_par.shape[0]
        global_inds = self._global_inds(dim, global_inds)
        hvp_at = make_hvp_at(self._fun, opt_par)
        products = self._global_products(hvp_at, dim, global_inds,
                                         print_every)
        self.num_hvps = len(global_inds)
        global_block = products[global_inds]
        vals, rows, cols = self._global_coo(
            0.5 * (global_block + global_block.T),
            products[self._local_inds.ravel()], global_inds)
        if print_every > 0:
            print("Done differentiating.")
        return sp.coo_matrix((vals, (rows, cols)), shape=(dim, dim))

    def _arrowhead(self, opt_par, global_inds, print_every,
                   verify) -> ArrowheadBlocks:
        """All blocks from ``m + g`` HVPs on one trace, optionally verified."""
        dim = opt_par.shape[0]
        global_inds = self._global_inds(dim, global_inds)
        hvp_at = make_hvp_at(self._fun, opt_par)
        local_blocks = self._local_blocks(hvp_at, dim, print_every)
        products = self._global_products(hvp_at, dim, global_inds,
                                         print_every)
        self.num_hvps = self._block_size + len(global_inds)
        global_block = products[global_inds]
        global_block = 0.5 * (global_block + global_block.T)
        cross = products[self._local_inds].transpose(0, 2, 1)
        blocks = ArrowheadBlocks(global_block, cross, local_blocks,
                                 global_inds.copy(), self._local_inds.copy())
        if verify:
            covered = onp.concatenate([global_inds, self._local_inds.ravel()])
            self._verify(opt_par, hvp_at,
                         lambda v: _arrowhead_matvec(blocks, v), covered,
                         covered, "the global/local structure "
                         "(sparsity_array)")
        if print_every > 0:
            print("Done differentiating.")
        return blocks

    def _blocks_to_csr(self, blocks: ArrowheadBlocks,
                       dim: int) -> sp.csr_matrix:
        g = len(blocks.global_inds)
        cross = blocks.cross_blocks.transpose(0, 2, 1).reshape(-1, g)
        parts = [self._block_coo(blocks.local_blocks, dim),
                 self._global_coo(blocks.global_block, cross,
                                  blocks.global_inds)]
        vals, rows, cols = (onp.concatenate(p) for p in zip(*parts))
        return sp.csr_matrix((vals, (rows, cols)), shape=(dim, dim))

    def get_arrowhead_blocks(self, opt_par: Any, global_inds: Any = None,
                             print_every: int = 0,
                             verify: bool = True) -> ArrowheadBlocks:
        r"""The Hessian's blocks as stacked dense arrays.

        Parameters
        ----------
        opt_par : array_like, shape (D,)
        global_inds : array_like of int, optional
            As in :meth:`get_global_hessian` (default: every index not in
            ``sparsity_array``).
        print_every : int, optional
            Print progress every this many HVPs (0: silent).
        verify : bool, optional
            Check the blocks against one HVP in a random direction over the
            covered coordinates (default True).

        Returns
        -------
        ArrowheadBlocks
            ``global_block`` (g, g), ``cross_blocks`` (T, g, m),
            ``local_blocks`` (T, m, m), ``global_inds``, ``local_inds`` -- the
            layout of :class:`refold.sensitivity.arrowhead.ArrowheadHessian`.
            Uses ``m + g`` HVPs (plus one probe) sweeping one recorded
            gradient graph.

        Raises
        ------
        ValueError
            Bad input, or (with ``verify``) when the objective couples
            coordinates the structure claims are independent.
        """
        opt_par, print_every = self._checked(opt_par, print_every)
        return self._arrowhead(opt_par, global_inds, print_every, verify)

    def get_arrowhead_hessian(self, opt_par: Any, print_every: int = 0,
                              verify: bool = True):
        r"""The Hessian as an :class:`~refold.sensitivity.arrowhead.ArrowheadHessian`.

        Globals are every index not in ``sparsity_array``.  Same cost and
        checks as :meth:`get_hessian`, without assembling a sparse matrix;
        the result solves by Schur complement.

        Returns
        -------
        refold.sensitivity.arrowhead.ArrowheadHessian
        """
        opt_par, print_every = self._checked(opt_par, print_every)
        return _to_arrowhead(self._arrowhead(opt_par, None, print_every,
                                             verify))

    def get_hessian(self, opt_par: Any, print_every: int = 0,
                    verify: bool = True,
                    return_arrowhead: bool = False):
        r"""The full block-sparse Hessian: local blocks plus globals.

        Parameters
        ----------
        opt_par : array_like, shape (D,)
        print_every : int, optional
            Print progress every this many HVPs (0: silent).
        verify : bool, optional
            Check the Hessian against one HVP in a random direction (default
            True).
        return_arrowhead : bool, optional
            Also return the same Hessian as an
            :class:`~refold.sensitivity.arrowhead.ArrowheadHessian`.

        Returns
        -------
        hessian : scipy.sparse.csr_matrix, shape (D, D)
            Uses ``m + g`` HVPs (plus one probe), see ``num_hvps``.
        arrowhead : refold.sensitivity.arrowhead.ArrowheadHessian
            Only when ``return_arrowhead`` is True.

        Raises
        ------
        ValueError
            Bad input, or (with ``verify``) when the objective couples
            coordinates the structure claims are independent.
        """
        opt_par, print_every = self._checked(opt_par, print_every)
        blocks = self._arrowhead(opt_par, None, print_every, verify)
        hessian = self._blocks_to_csr(blocks, opt_par.shape[0])
        if return_arrowhead:
            return hessian, _to_arrowhead(blocks)
        return hessian


def _to_arrowhead(blocks: ArrowheadBlocks):
    """The :class:`ArrowheadHessian` (Schur-complement solver) of ``blocks``."""
    from refold.sensitivity.arrowhead import ArrowheadHessian
    return ArrowheadHessian(blocks.global_block, blocks.cross_blocks,
                            blocks.local_blocks, blocks.global_inds,
                            blocks.local_inds)


def _arrowhead_matvec(blocks: ArrowheadBlocks, vec: onp.ndarray) -> onp.ndarray:
    """``H @ vec`` from stacked arrowhead blocks (zero off the blocks)."""
    out = onp.zeros_like(vec)
    v_g = vec[blocks.global_inds]
    v_l = vec[blocks.local_inds]
    out[blocks.global_inds] = (blocks.global_block @ v_g + onp.einsum(
        "tia,ta->i", blocks.cross_blocks, v_l))
    out[blocks.local_inds] = (onp.einsum("tab,tb->ta", blocks.local_blocks,
                                         v_l)
                              + onp.einsum("tia,i->ta", blocks.cross_blocks,
                                           v_g))
    return out
