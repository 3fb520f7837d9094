r"""Exception classes that old ``except`` clauses still catch.

Where paragami 0.42 raised one exception type and refold raises a more
fitting one, refold raises a class derived from *both*, so ported code that
catches paragami's type keeps working and new code can catch refold's:

====================================  ==============================  ==========================
raised for                            class                           caught by
====================================  ==============================  ==========================
a function wrapper's ``patterns``,    :class:`PatternArgumentError`   ``TypeError``,
``argnums``/``retnums`` or ``free``                                   ``ValueError`` (paragami)
of the wrong kind
an unknown or unnamed pattern type    :class:`UnknownPatternError`    ``ValueError``,
in JSON                                                               ``KeyError`` (paragami)
text that is not JSON                 :class:`PatternJSONError`       ``ValueError``,
                                                                      ``json.JSONDecodeError``
                                                                      (paragami)
====================================  ==============================  ==========================

Each prints its message plainly (``KeyError`` alone would quote it).
"""
from __future__ import annotations

import json

__all__ = ["PatternArgumentError", "UnknownPatternError", "PatternJSONError"]


class PatternArgumentError(TypeError, ValueError):
    """An argument of the wrong kind (a ``TypeError``), where paragami
    raised ``ValueError``."""

    __str__ = ValueError.__str__


class UnknownPatternError(ValueError, KeyError):
    """JSON naming a pattern type that is not registered, or naming none (a
    ``ValueError``; paragami raised ``KeyError``)."""

    __str__ = ValueError.__str__


class PatternJSONError(json.JSONDecodeError):
    """Text that is not valid JSON: a ``json.JSONDecodeError`` (so also a
    ``ValueError``) whose message says where the text was expected.

    Parameters
    ----------
    message : str
        The full message.
    err : json.JSONDecodeError
        The parser's error (its ``msg``, ``doc``, ``pos``, ``lineno`` and
        ``colno`` are kept).
    """

    def __init__(self, message: str, err: json.JSONDecodeError) -> None:
        super().__init__(err.msg, err.doc, err.pos)
        self.args = (message,)

    def __reduce__(self):
        return (_rebuild_json_error, (self.args[0], self.msg, self.doc,
                                      self.pos))

    def __str__(self) -> str:
        return self.args[0]


def _rebuild_json_error(message, msg, doc, pos):
    return PatternJSONError(message, json.JSONDecodeError(msg, doc, pos))
