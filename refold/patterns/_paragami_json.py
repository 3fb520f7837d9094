"""Reading pattern JSON written by paragami 0.42.

paragami names its types by module path
(``'paragami.psdmatrix_patterns.PSDSymmetricMatrixPattern'``): each name is
an alias of the refold pattern it loads as. Its containers write their
nested patterns (the members of a ``PatternDict``, the base of a
``PatternArray``) as JSON *strings* inside the JSON, and a ``PatternArray``
also writes its derived ``shape``; the adapters here turn such a decoded
spec into the refold class's ``as_dict`` format. refold writes its own
(standard) format; :func:`refold.patterns.paragami_format.to_paragami_json`
writes paragami's.
"""
from __future__ import annotations

from typing import Any, Callable

__all__ = ["PARAGAMI_ALIASES", "ADAPTERS"]

#: paragami 0.42's type names and the refold names they load as.
PARAGAMI_ALIASES = {
    "paragami.numeric_array_patterns.NumericArrayPattern":
        "refold.NumericArrayPattern",
    "paragami.numeric_array_patterns.NumericVectorPattern":
        "refold.NumericVectorPattern",
    "paragami.numeric_array_patterns.NumericScalarPattern":
        "refold.NumericScalarPattern",
    "paragami.psdmatrix_patterns.PSDSymmetricMatrixPattern":
        "refold.PSDSymmetricMatrixPattern",
    "paragami.simplex_patterns.SimplexArrayPattern":
        "refold.SimplexArrayPattern",
    "paragami.pattern_containers.PatternDict": "refold.PatternDict",
    "paragami.pattern_containers.PatternArray": "refold.PatternArray",
}

#: ``read_text(text, where)`` builds the pattern a JSON string describes.
ReadText = Callable[[str, str], Any]


def _nested_text(value: Any, where: str, read_text: ReadText):
    """paragami writes nested patterns as JSON strings; read them."""
    if isinstance(value, str):
        return read_text(value, where)
    return value


def _adapt_dict(spec: dict, where: str, read_text: ReadText) -> dict:
    contents = spec.get("contents")
    if isinstance(contents, dict):
        spec["contents"] = {
            key: _nested_text(value, "{}['contents'][{!r}]".format(where, key),
                              read_text)
            for key, value in contents.items()}
    spec.setdefault("free_default", None)
    return spec


def _adapt_array(spec: dict, where: str, read_text: ReadText) -> dict:
    spec.pop("shape", None)  # derived from array_shape and the base
    if "base_pattern" in spec:
        spec["base_pattern"] = _nested_text(
            spec["base_pattern"], "{}['base_pattern']".format(where),
            read_text)
    spec.setdefault("free_default", None)
    return spec


#: Adapters by refold type name: ``adapter(spec, where, read_text)``
#: rewrites a decoded spec written by paragami (in place) and returns it.
ADAPTERS = {"refold.PatternDict": _adapt_dict,
            "refold.PatternArray": _adapt_array}
