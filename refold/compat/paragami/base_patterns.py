"""``paragami.base_patterns``: :class:`~refold.patterns.base.Pattern`."""
from refold.patterns.base import Pattern  # noqa: F401

__all__ = ["Pattern"]
