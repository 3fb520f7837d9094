"""The battery's case type, classifier and generic bad values.

A *case* is one bad input to one public entry point: a thunk that makes the
call and the argument name(s) whose appearance in the message makes the
error *clean*.  The classifier runs it and sorts the outcome into

``clean``
    a ``ValueError``/``TypeError`` (or a class that is both, e.g.
    ``ValueError`` and ``KeyError``) whose message names the argument;
``terse``
    a ``ValueError``/``TypeError`` that does not name it;
``raw``
    any other exception (``LinAlgError``, ``IndexError``, ``KeyError``,
    ``ZeroDivisionError``, ``OverflowError``, ...), including numpy's own
    ``LinAlgError`` although it subclasses ``ValueError`` (refold's
    ``HessianError``, a ``LinAlgError`` for porting, is judged by its
    message like any ``ValueError``);
``nan``
    a result with NaN in it, or a numpy ``RuntimeWarning`` on the way
    (invalid value, overflow, divide by zero: turned into errors here);
``wrong``
    a result returned for an input that is wrong: a silent wrong answer.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Sequence, Tuple

import numpy as np

CLEAN, TERSE, RAW, NAN, WRONG = "clean", "terse", "raw", "nan", "wrong"
CLASSES = (CLEAN, TERSE, RAW, NAN, WRONG)


@dataclass(frozen=True)
class Case:
    """One bad input: ``call()`` makes the call; the message must contain
    one of ``names``."""

    label: str
    call: Callable[[], Any]
    names: Tuple[str, ...]


def _has_nan(value: Any, depth: int = 0) -> bool:
    if depth > 3:
        return False
    if isinstance(value, dict):
        return any(_has_nan(v, depth + 1) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_nan(v, depth + 1) for v in value)
    try:
        arr = np.asarray(value)
    except Exception:
        return False
    if arr.dtype.kind in "fc":
        return bool(np.isnan(arr).any())
    return False


def classify(case: Case) -> Tuple[str, str]:
    """``(class, detail)`` of one case (see the module notes)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            out = case.call()
    except np.linalg.LinAlgError as err:          # a ValueError subclass
        if not type(err).__module__.startswith("refold"):
            return RAW, f"LinAlgError: {err}"   # numpy's own, unexplained
        msg = str(err)                          # refold's HessianError
        kind = CLEAN if any(name in msg for name in case.names) else TERSE
        return kind, f"{type(err).__name__}: {msg}"
    except (ValueError, TypeError) as err:
        msg = str(err)
        if any(name in msg for name in case.names):
            return CLEAN, f"{type(err).__name__}: {msg}"
        return TERSE, f"{type(err).__name__}: {msg}"
    except RuntimeWarning as warn:
        return NAN, f"RuntimeWarning: {warn}"
    except Exception as err:                      # noqa: BLE001 - the point
        return RAW, f"{type(err).__name__}: {err}"
    if _has_nan(out):
        return NAN, f"returned NaN: {str(out)[:120]}"
    return WRONG, f"returned {str(out)[:120]}"


# ----------------------------------------------------------------------------
# Generic bad values, by the kind of argument.
# ----------------------------------------------------------------------------
class _Opaque:
    def __repr__(self):
        return "<opaque object>"


def bad_arrays(shape: Sequence[int]) -> List[Tuple[str, Any]]:
    """Bad values for a required real array of ``shape``."""
    shape = tuple(shape)
    good = np.ones(shape)
    wrong = shape[:-1] + (shape[-1] + 1,) if shape else (2,)
    out = [
        ("None", None),
        ("string", "abc"),
        ("dict", {"a": 1.0}),
        ("object", _Opaque()),
        ("NaN", np.full(shape, np.nan)),
        ("inf", np.full(shape, np.inf)),
        ("complex", good * (1 + 1j)),
        ("strings array", np.full(shape, "a")),
        ("wrong length", np.ones(wrong)),
        ("extra dimension", np.ones(shape + (2,))),
        ("ragged", [[1.0], [1.0, 2.0]]),
    ]
    if shape:
        out.append(("empty", np.ones(shape[:-1] + (0,))))
    return out


BAD_POSITIVE = [("negative", -1.0), ("zero", 0.0), ("NaN", np.nan),
                ("inf", np.inf), ("string", "1"), ("bool", True),
                ("vector", np.array([1.0, 2.0])), ("complex", 1 + 1j)]
BAD_OPTIONAL_POSITIVE = [v for v in BAD_POSITIVE]
BAD_FINITE = [("NaN", np.nan), ("inf", np.inf), ("string", "x"),
              ("vector", np.array([1.0, 2.0])), ("complex", 1 + 2j)]
BAD_INT = [("fraction", 2.5), ("string", "3"), ("bool", True),
           ("negative", -1), ("None", None)]
BAD_COUNT = [("fraction", 2.5), ("string", "3"), ("bool", True),
             ("negative", -1)]
BAD_BOOL = [("string no", "no"), ("None", None), ("int 1", 1),
            ("float 0", 0.0), ("string True", "True")]
BAD_OPTIONAL_BOOL = [("string no", "no"), ("int 1", 1), ("float 0", 0.0)]
BAD_CALLABLE = [("float", 3.0), ("string", "f"), ("None", None)]
BAD_OPTIONAL_CALLABLE = [("float", 3.0), ("string", "f")]
BAD_TOL = [("negative", -1.0), ("zero", 0.0), ("NaN", np.nan),
           ("string", "small"), ("bool", True), ("inf", np.inf)]


def without(bads: Iterable[Tuple[str, Any]], *labels: str
            ) -> List[Tuple[str, Any]]:
    """``bads`` without the named entries (values that are not bad for a
    function accepting any length, say)."""
    return [(what, value) for what, value in bads if what not in labels]


def sweep(label: str, fun: Callable, good: Dict[str, Any], arg: str,
          bads: Iterable[Tuple[str, Any]], names: Sequence[str] = (),
          args: Tuple = ()) -> List[Case]:
    """One case per bad value of keyword ``arg``, the others ``good``.

    The message must name ``arg`` (or one of ``names``)."""
    accepted = tuple(names) or (arg,)
    cases = []
    for what, value in bads:
        kwargs = dict(good)
        kwargs[arg] = value
        cases.append(Case(f"{label}: {arg}={what}",
                          (lambda kw=kwargs: fun(*args, **kw)), accepted))
    return cases


def one(label: str, call: Callable[[], Any], *names: str) -> Case:
    """A single hand-written case."""
    return Case(label, call, tuple(names))
