"""``vittles.sparse_hessian_lib``: :mod:`refold.sensitivity.sparse_hessian`."""
from refold.sensitivity.sparse_hessian import SparseBlockHessian  # noqa

__all__ = ["SparseBlockHessian"]
