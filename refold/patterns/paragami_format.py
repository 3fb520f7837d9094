r"""Writing pattern JSON that paragami 0.42 reads.

refold reads paragami's JSON (:mod:`refold.patterns.json_io`), but its own
JSON -- standard JSON with nested objects and tagged infinities -- is not
paragami's: paragami looks types up by its own names, expects nested
patterns as JSON *strings*, and writes infinite bounds as the non-standard
``Infinity`` token. :func:`to_paragami_json` writes paragami's format, for
handing patterns to code that still runs paragami:

=================================  ==========================================
refold pattern                     written as paragami's
=================================  ==========================================
``NumericArrayPattern``,           the same class under paragami's name,
``NumericVectorPattern``,          with every constructor argument
``NumericScalarPattern``,          (``free_default`` included: paragami's
``PSDSymmetricMatrixPattern``,     constructors accept it, so it survives)
``SimplexArrayPattern``
``PatternDict``                    ``keys`` and ``contents`` (members as JSON
                                   strings); paragami does not read
                                   ``free_default`` back for containers
``PatternArray``                   ``shape``, ``array_shape`` and
                                   ``base_pattern`` (a JSON string); a
                                   ``PatternDict`` base is refused (paragami
                                   has none)
``CorrelationMatrixPattern``       refused: paragami has no such pattern
any other (your own) pattern       ``json.dumps(pattern.as_dict())``, as
                                   paragami's ``to_json`` did
=================================  ==========================================
"""
from __future__ import annotations

import json

from refold.patterns._paragami_json import PARAGAMI_ALIASES
from refold.patterns.base import Pattern
from refold.patterns.containers import PatternArray, PatternDict
from refold.patterns.correlation import CorrelationMatrixPattern
from refold.patterns.numeric import (
    NumericArrayPattern, NumericScalarPattern, NumericVectorPattern)
from refold.patterns.psd import PSDSymmetricMatrixPattern
from refold.patterns.simplex import SimplexArrayPattern

__all__ = ["to_paragami_json"]

_PARAGAMI_NAMES = {refold: paragami
                   for paragami, refold in PARAGAMI_ALIASES.items()}
_LEAVES = (NumericArrayPattern, NumericVectorPattern, NumericScalarPattern,
           PSDSymmetricMatrixPattern, SimplexArrayPattern)


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def _spec(pattern, where: str) -> dict:
    kind = type(pattern)
    if kind in _LEAVES:
        spec = {key: _jsonable(value)
                for key, value in pattern.as_dict().items()}
        spec["pattern"] = _PARAGAMI_NAMES[kind.json_typename()]
        return spec
    if kind is PatternDict:
        keys = list(pattern.keys())
        return {"pattern": _PARAGAMI_NAMES[kind.json_typename()],
                "keys": keys,
                "contents": {key: _text(pattern[key],
                                        "{}[{!r}]".format(where, key))
                             for key in keys}}
    if kind is PatternArray:
        base = pattern.base_pattern()
        if isinstance(base, PatternDict):
            raise ValueError(
                "{}: paragami 0.42 has no PatternArray of PatternDicts; it "
                "cannot read this pattern".format(where))
        return {"pattern": _PARAGAMI_NAMES[kind.json_typename()],
                "shape": list(pattern.shape()),
                "array_shape": list(pattern.array_shape()),
                "base_pattern": _text(base, where + ".base_pattern()")}
    if isinstance(pattern, CorrelationMatrixPattern):
        raise ValueError("{}: paragami 0.42 has no CorrelationMatrixPattern;"
                         " it cannot read this pattern".format(where))
    spec = pattern.as_dict()
    if not isinstance(spec, dict) or not isinstance(spec.get("pattern"), str):
        raise ValueError("{}: {}.as_dict() must return a dict with a string "
                         "'pattern' entry".format(where, kind.__name__))
    return spec


def _text(pattern, where: str) -> str:
    if not isinstance(pattern, Pattern):
        raise TypeError("{}: expected a Pattern, got {}".format(
            where, type(pattern).__name__))
    spec = _spec(pattern, where)
    try:
        return json.dumps(spec)
    except TypeError as err:
        raise TypeError("{}: {}.as_dict() holds a value JSON cannot "
                        "represent ({})".format(where, type(pattern).__name__,
                                                err)) from None


def to_paragami_json(pattern: Pattern) -> str:
    """JSON in paragami 0.42's format, which ``paragami.get_pattern_from_json``
    reads (and refold reads too).

    Parameters
    ----------
    pattern : Pattern

    Returns
    -------
    str
        paragami's format: its type names, nested patterns as JSON strings,
        infinite bounds as the (non-standard) ``Infinity`` token.

    Raises
    ------
    ValueError
        For a pattern paragami has no counterpart of
        (``CorrelationMatrixPattern``, a ``PatternArray`` of
        ``PatternDict``).
    TypeError
        If ``pattern`` is not a pattern, or your pattern's ``as_dict()``
        holds a value JSON cannot represent.

    Examples
    --------
    >>> import refold
    >>> to_paragami_json(refold.NumericVectorPattern(2, lb=0.0))
    '{"pattern": "paragami.numeric_array_patterns.NumericVectorPattern", "length": 2, "lb": 0.0, "ub": Infinity, "default_validate": true, "free_default": null}'
    """
    return _text(pattern, "pattern")
