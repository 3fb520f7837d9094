"""``vittles.lr_cov_lib``: :mod:`refold.models.lr_covariance`."""
from refold.models.lr_covariance import LinearResponseCovariances  # noqa

__all__ = ["LinearResponseCovariances"]
