r"""Patterns as JSON, and folded values saved to files with their pattern.

The JSON format
---------------
A pattern is written as one JSON object: its ``as_dict()``, whose
``'pattern'`` entry is the registered type name
(``'refold.PSDSymmetricMatrixPattern'``) and whose other entries are the
constructor's arguments::

    {"pattern": "refold.NumericArrayPattern", "shape": [2], "lb": 0.0,
     "ub": {"__float__": "inf"}, "default_validate": true,
     "free_default": null}

- The output is standard JSON (``json.dumps(..., allow_nan=False)``): the
  non-finite floats ``inf``, ``-inf`` and ``nan`` are written in the tagged
  form ``{"__float__": "inf"}`` (``"-inf"``, ``"nan"``) and read back as
  floats. paragami's bare ``Infinity``/``NaN`` tokens are also read.
- A nested pattern (a member of a :class:`~refold.PatternDict`, the base of
  a :class:`~refold.PatternArray`) is a nested JSON object; an object is read
  as a pattern when it has a string entry ``'pattern'``.
- Tuples become lists; numpy scalars and arrays become plain numbers, bools
  and lists.
- Reading is safe: type names are looked up in a registry and nothing named
  in the JSON is ever imported or executed. refold's own patterns are
  registered (under their ``'refold.<Class>'`` names and paragami 0.42's
  names, so files written by paragami load); register your own classes with
  :func:`register_pattern_json`.

Files
-----
:func:`save_folded` writes a numpy ``.npz`` archive holding the non-free
flat value (``'flat_val'``), the pattern's JSON (``'pattern_json'``, a string)
and any extra arrays; :func:`load_folded` reads it back without unpickling.
"""
from __future__ import annotations

import inspect
import json
import numbers
import os
import threading
from typing import Any, Optional, Tuple

import numpy as onp

from refold.patterns._paragami_json import ADAPTERS as _PARAGAMI_ADAPTERS
from refold.patterns._paragami_json import \
    PARAGAMI_ALIASES as _PARAGAMI_ALIASES
from refold.patterns.base import Pattern
from refold.patterns.errors import PatternJSONError, UnknownPatternError

__all__ = ["pattern_to_json", "pattern_from_json", "register_pattern_json",
           "get_pattern_from_json", "save_folded", "load_folded"]

#: Key of the tagged form of a non-finite float.
FLOAT_TAG = "__float__"

_FLAT_KEY = "flat_val"
_JSON_KEY = "pattern_json"

# refold modules whose patterns are registered on first use.
_BUILTIN_MODULES = ("numeric", "psd", "simplex", "correlation", "containers")

# name -> (class, adapter). An adapter (or None) turns a decoded spec written
# in an alias's format into the refold class's ``as_dict`` format (see
# refold.patterns._paragami_json).
_user_registry: dict = {}
_builtins: Optional[dict] = None
_lock = threading.Lock()


# ----------------------------------------------------------------------
# The registry.

def _builtin_registry() -> dict:
    """refold's own patterns and paragami's aliases, imported on first use."""
    global _builtins
    if _builtins is not None:
        return _builtins
    with _lock:
        if _builtins is not None:
            return _builtins
        import importlib
        table = {}
        for short in _BUILTIN_MODULES:
            name = "refold.patterns." + short
            module = importlib.import_module(name)
            for obj in vars(module).values():
                if (isinstance(obj, type) and issubclass(obj, Pattern)
                        and obj.__module__ == name
                        and obj.__dict__.get("_json_name")):
                    table[obj.json_typename()] = (obj, None)
        for old, new in _PARAGAMI_ALIASES.items():
            if new in table:
                table[old] = (table[new][0], _PARAGAMI_ADAPTERS.get(new))
        _builtins = table
        return table


def _lookup(name: str):
    """``(class, adapter)`` registered under ``name``, or ``None``."""
    entry = _user_registry.get(name)
    return entry if entry is not None else _builtin_registry().get(name)


def _registered_names() -> list:
    return sorted(set(_builtin_registry()) | set(_user_registry))


def register_pattern_json(pattern: type, allow_overwrite: bool = False):
    """Register a pattern class so that JSON naming it can be read.

    Parameters
    ----------
    pattern : type
        A subclass of :class:`refold.patterns.base.Pattern` (the class, not
        an instance). It is registered under ``pattern.json_typename()``.
    allow_overwrite : bool, optional
        Whether to replace a different class already registered under the
        same name. Registering the same class twice is always allowed.

    Returns
    -------
    type
        ``pattern``, so this function can be used as a class decorator.

    Raises
    ------
    TypeError
        If ``pattern`` is not a concrete ``Pattern`` subclass.
    ValueError
        If another class is registered under the same name and
        ``allow_overwrite`` is false.

    Examples
    --------
    >>> from refold.patterns.json_io import register_pattern_json
    >>> register_pattern_json(MyPattern)                # doctest: +SKIP
    >>> get_pattern_from_json(MyPattern(3).to_json())   # doctest: +SKIP
    MyPattern(size=3)
    """
    if not isinstance(allow_overwrite, (bool, onp.bool_)):
        raise TypeError("allow_overwrite: expected True or False, got "
                        "{!r}".format(allow_overwrite))
    if not isinstance(pattern, type):
        raise TypeError(
            "pattern: expected a Pattern subclass (the class itself), got "
            "{}".format("an instance of " + type(pattern).__name__
                        if isinstance(pattern, Pattern) else repr(pattern)))
    if not issubclass(pattern, Pattern):
        raise TypeError("pattern: expected a subclass of "
                        "refold.patterns.base.Pattern, got {}".format(
                            pattern.__name__))
    if inspect.isabstract(pattern):
        raise TypeError(
            "pattern: {} is abstract (it does not implement {}), so it "
            "cannot be built from JSON".format(
                pattern.__name__, ", ".join(sorted(
                    pattern.__abstractmethods__))))
    name = pattern.json_typename()
    existing = _lookup(name)
    if existing is not None and existing[0] is not pattern \
            and not allow_overwrite:
        raise ValueError(
            "pattern: the JSON name {!r} is already registered for {}.{}; "
            "pass allow_overwrite=True to replace it".format(
                name, existing[0].__module__, existing[0].__qualname__))
    _user_registry[name] = (pattern, None)
    return pattern


# ----------------------------------------------------------------------
# Writing.

def _encode(obj: Any, where: str):
    """A JSON-ready copy of an ``as_dict`` value (``where`` for errors)."""
    if isinstance(obj, Pattern):
        return _encode_pattern(obj, where)
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, onp.ndarray):
        if obj.dtype.kind not in "biuf" and obj.dtype != object:
            raise TypeError("{}: cannot write an array of dtype {} as "
                            "JSON".format(where, obj.dtype))
        return _encode(obj.tolist(), where)
    if isinstance(obj, onp.bool_):
        return bool(obj)
    if isinstance(obj, (numbers.Integral, onp.integer)):
        return int(obj)
    if isinstance(obj, (numbers.Real, onp.floating)):
        value = float(obj)
        if onp.isfinite(value):
            return value
        return {FLOAT_TAG: "nan" if onp.isnan(value) else
                ("inf" if value > 0 else "-inf")}
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if isinstance(key, onp.str_):
                key = str(key)
            if not isinstance(key, str):
                raise TypeError(
                    "{}: JSON object keys must be strings, got {!r}".format(
                        where, key))
            out[key] = _encode(value, "{}[{!r}]".format(where, key))
        if isinstance(out.get("pattern"), str) or \
                (len(out) == 1 and FLOAT_TAG in out):
            raise ValueError(
                "{}: a plain dict with the key {!r} would be read back as a "
                "{}; rename the key".format(
                    where, "pattern" if "pattern" in out else FLOAT_TAG,
                    "pattern" if "pattern" in out else "tagged float"))
        return out
    if isinstance(obj, (list, tuple)):
        return [_encode(v, "{}[{}]".format(where, i))
                for i, v in enumerate(obj)]
    raise TypeError(
        "{}: cannot write a {} as JSON (expected a Pattern, dict, list, "
        "tuple, str, bool, number or None)".format(where, type(obj).__name__))


def _encode_pattern(pattern: Pattern, where: str) -> dict:
    spec = pattern.as_dict()
    cls_name = type(pattern).__name__
    if not isinstance(spec, dict) or not isinstance(spec.get("pattern"), str):
        raise ValueError(
            "{}: {}.as_dict() must return a dict whose 'pattern' entry is "
            "{}.json_typename()".format(where, cls_name, cls_name))
    # as_dict()['pattern'] names the type in the JSON even when it is not
    # json_typename() (paragami allowed that); reading the JSON back then
    # needs that name registered, and from_json says so if it is not.
    out = {}
    for key, value in spec.items():
        if not isinstance(key, str):
            raise TypeError("{}: {}.as_dict() keys must be strings, got "
                            "{!r}".format(where, cls_name, key))
        out[key] = value if key == "pattern" else \
            _encode(value, "{}[{!r}]".format(where, key))
    return out


def pattern_to_json(pattern: Pattern) -> str:
    """The standard JSON string describing ``pattern``.

    Parameters
    ----------
    pattern : Pattern

    Returns
    -------
    str
        JSON without ``Infinity``/``NaN`` tokens; see the module notes.

    Raises
    ------
    TypeError
        If ``pattern`` is not a pattern, or its ``as_dict()`` holds a value
        JSON cannot represent.
    """
    if not isinstance(pattern, Pattern):
        raise TypeError("pattern: expected a Pattern, got {}".format(
            type(pattern).__name__))
    encoded = _encode_pattern(pattern, "pattern")
    return json.dumps(encoded, allow_nan=False)


# ----------------------------------------------------------------------
# Reading.

def _parse_text(text: Any, where: str):
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError("{}: expected UTF-8 JSON text ({})".format(
                where, err)) from None
    if not isinstance(text, str):
        raise TypeError(
            "{}: expected a JSON string made by a pattern's to_json(), got "
            "{}".format(where, type(text).__name__))
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise PatternJSONError(
            "{}: expected a JSON object describing a pattern, but the text is "
            "not valid JSON ({} at line {}, column {})".format(
                where, err.msg, err.lineno, err.colno), err) from None


def _decode(obj: Any, where: str):
    """Rebuild floats and nested patterns in a parsed JSON value."""
    if isinstance(obj, dict):
        if isinstance(obj.get("pattern"), str):
            return _build(obj, where, None)
        if len(obj) == 1 and FLOAT_TAG in obj:
            return _decode_float(obj[FLOAT_TAG], where)
        return {key: _decode(value, "{}[{!r}]".format(where, key))
                for key, value in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, "{}[{}]".format(where, i))
                for i, v in enumerate(obj)]
    return obj


def _decode_float(tag: Any, where: str) -> float:
    value = None
    if isinstance(tag, str):
        try:
            value = float(tag)
        except ValueError:
            pass
    if value is None or onp.isfinite(value):
        raise ValueError(
            "{}: expected {{{!r}: 'inf' | '-inf' | 'nan'}}, got {{{!r}: "
            "{!r}}}".format(where, FLOAT_TAG, FLOAT_TAG, tag))
    return value


def _build(obj: Any, where: str, cls: Optional[type]) -> Pattern:
    """The pattern described by the parsed JSON object ``obj``."""
    if not isinstance(obj, dict):
        raise ValueError(
            "{}: expected a JSON object describing a pattern, got a JSON "
            "{}".format(where, _json_kind(obj)))
    name = obj.get("pattern")
    if not isinstance(name, str):
        raise UnknownPatternError(
            "{}: expected a JSON object with a string entry 'pattern' naming "
            "the pattern type, got keys {}".format(where, sorted(obj)))
    target, adapter = _resolve(name, where, cls)
    spec = {key: _decode(value, "{}[{!r}]".format(where, key))
            for key, value in obj.items() if key != "pattern"}
    if adapter is not None:
        spec = adapter(spec, where, _read_text)
    try:
        return target._from_dict(spec)
    except Exception as err:  # the constructor rejected the entries
        raise ValueError(
            "{}: cannot build a {} from the JSON entries {}: {}".format(
                where, target.__name__, sorted(spec), err)) from err


def _resolve(name: str, where: str, cls: Optional[type]):
    entry = _lookup(name)
    if cls is None or inspect.isabstract(cls):
        if entry is None:
            raise UnknownPatternError(
                "{}: unknown pattern type {!r}. Register its class with "
                "refold.register_pattern_json(YourPatternClass) before "
                "reading it (nothing named in JSON is imported). Registered "
                "types: {}".format(where, name, ", ".join(
                    _registered_names())))
        if cls is not None and not issubclass(entry[0], cls):
            raise ValueError(
                "{}: {}.from_json was given JSON for a {!r}, which is not a "
                "{}".format(where, cls.__name__, name, cls.__name__))
        return entry
    if name == cls.json_typename():
        return cls, None
    if entry is not None and entry[0] is cls:
        return entry
    raise ValueError(
        "{}: {}.from_json must be given JSON made by {}.to_json() (type name "
        "{!r}), got JSON for {!r}; use refold.get_pattern_from_json to read "
        "any registered type".format(where, cls.__name__, cls.__name__,
                                     cls.json_typename(), name))


def _json_kind(obj: Any) -> str:
    if isinstance(obj, list):
        return "array"
    if isinstance(obj, str):
        return "string"
    if obj is None:
        return "null"
    if isinstance(obj, bool):
        return "boolean"
    return "number" if isinstance(obj, (int, float)) else \
        type(obj).__name__


def _read_text(text: str, where: str) -> Pattern:
    """The pattern (of any registered type) that JSON ``text`` describes."""
    return _build(_parse_text(text, where), where, None)


def pattern_from_json(json_string: str, cls: Optional[type] = None) -> Pattern:
    """The pattern described by ``json_string``.

    Parameters
    ----------
    json_string : str
        JSON made by :func:`pattern_to_json` (or by paragami 0.42).
    cls : type, optional
        With a concrete class, the JSON must describe that class (its
        ``json_typename()`` or a name registered for it); the class itself
        need not be registered. With ``None`` or an abstract class any
        registered type (a subclass of ``cls``) is accepted.

    Returns
    -------
    Pattern

    Raises
    ------
    ValueError
        For text that is not JSON, JSON that is not an object with a
        ``'pattern'`` entry, an unregistered type name, a type other than
        ``cls``, or entries the class's constructor rejects.
    TypeError
        If ``json_string`` is not a string.
    """
    try:
        obj = _parse_text(json_string, "pattern_json")
        return _build(obj, "pattern_json", cls)
    except RecursionError:
        raise ValueError("pattern_json: the JSON is nested too deeply to "
                         "describe a pattern") from None


def get_pattern_from_json(pattern_json: str) -> Pattern:
    """The pattern described by ``pattern_json`` (any registered type).

    Parameters
    ----------
    pattern_json : str
        JSON made by a pattern's ``to_json()``, by refold or paragami 0.42.

    Returns
    -------
    Pattern
        The pattern, of whichever registered type the JSON names.

    Raises
    ------
    ValueError
        See :func:`pattern_from_json`.

    Examples
    --------
    >>> from refold.patterns.numeric import NumericVectorPattern
    >>> pattern = NumericVectorPattern(3, lb=0.0, free_default=True)
    >>> get_pattern_from_json(pattern.to_json()) == pattern
    True
    """
    return pattern_from_json(pattern_json, None)


# ----------------------------------------------------------------------
# Files.

def save_folded(file, folded_val, pattern: Pattern, **argk) -> None:
    """Save a folded value, its pattern and extra arrays to an ``.npz`` file.

    Parameters
    ----------
    file : str, os.PathLike or file object
        Where to write, as for :func:`numpy.savez` (which appends ``.npz`` to
        a file name without it).
    folded_val
        A valid folded value of ``pattern``.
    pattern : Pattern
        Its pattern; it (and every nested pattern) must be registered for
        :func:`load_folded` to read the file.
    **argk
        Extra arrays to store alongside (anything numpy stores without
        pickling). The names ``'flat_val'`` and ``'pattern_json'`` are
        reserved.

    Raises
    ------
    TypeError
        If ``pattern`` is not a pattern or an extra value would need pickling.
    ValueError
        If ``folded_val`` is not a valid value of ``pattern`` or an extra
        name is reserved.
    """
    if not isinstance(pattern, Pattern):
        raise TypeError("pattern: expected a Pattern, got {}".format(
            type(pattern).__name__))
    extras = {}
    for key, value in argk.items():
        if key in (_FLAT_KEY, _JSON_KEY):
            raise ValueError(
                "{}: this name is reserved by save_folded for the flat value "
                "and the pattern; choose another".format(key))
        try:
            array = onp.asarray(value)
        except Exception as err:  # ragged sequences and the like
            raise TypeError("{}: cannot store {} in an .npz file ({})".format(
                key, type(value).__name__, err)) from None
        if array.dtype.hasobject:
            raise TypeError(
                "{}: cannot store {} without pickling; pass arrays of "
                "numbers, booleans or strings".format(
                    key, type(value).__name__))
        extras[key] = array
    flat_val = onp.asarray(pattern.flatten(folded_val, free=False))
    pattern_json = pattern.to_json()
    onp.savez(file, **{_FLAT_KEY: flat_val, _JSON_KEY: onp.str_(pattern_json)},
              **extras)


def load_folded(file) -> Tuple[Any, Pattern, dict]:
    """Load what :func:`save_folded` wrote.

    Parameters
    ----------
    file : str, os.PathLike or file object
        The ``.npz`` file. A file name missing its ``.npz`` suffix is found
        as :func:`numpy.savez` would have written it.

    Returns
    -------
    folded_val
        The folded value.
    pattern : Pattern
        Its pattern.
    data : dict
        The extra arrays saved with it, by name (``flat_val`` and
        ``pattern_json`` are not repeated). The file is closed.

    Raises
    ------
    OSError
        If the file cannot be read (``FileNotFoundError`` for a missing one).
    ValueError
        If the file is not an ``.npz`` archive written by ``save_folded``
        (no ``'pattern_json'`` or ``'flat_val'``, or entries that would need
        unpickling) or its pattern type is not registered.
    """
    if isinstance(file, (str, os.PathLike)):
        path = os.fspath(file)
        if not os.path.exists(path) and os.path.exists(
                os.fsdecode(path) + ".npz"):
            file = os.fsdecode(path) + ".npz"
    try:
        archive = onp.load(file, allow_pickle=False)
    except ValueError as err:
        raise ValueError("file: expected an .npz archive written by "
                         "save_folded ({})".format(err)) from None
    if not isinstance(archive, onp.lib.npyio.NpzFile):
        raise ValueError(
            "file: expected an .npz archive written by save_folded, got a "
            "single .npy array")
    with archive:
        names = list(archive.files)
        contents = {}
        for name in names:
            try:
                contents[name] = archive[name]
            except ValueError as err:
                raise ValueError(
                    "file: the entry {!r} cannot be read without unpickling, "
                    "which load_folded does not do ({})".format(
                        name, err)) from None
    for key in (_JSON_KEY, _FLAT_KEY):
        if key not in contents:
            raise ValueError(
                "file: expected an .npz archive written by save_folded with "
                "an entry {!r}; found entries {}".format(key, names))
    json_entry = contents.pop(_JSON_KEY)
    if json_entry.dtype.kind not in "US" or json_entry.ndim != 0:
        raise ValueError(
            "file: the entry 'pattern_json' should be a single string, got "
            "an array of shape {} and dtype {}".format(
                json_entry.shape, json_entry.dtype))
    text = json_entry.item()
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    pattern = get_pattern_from_json(text)
    folded_val = pattern.fold(contents.pop(_FLAT_KEY), free=False)
    return folded_val, pattern, contents
