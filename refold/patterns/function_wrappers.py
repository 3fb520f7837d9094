r"""Function wrappers: move a function's arguments and return values between
folded and flat form.

An objective is most naturally written in terms of folded parameters (a dict
with a mean vector and a covariance matrix), while an optimiser wants a
function of one free vector. The wrappers here convert one to the other,
with paragami 0.42's names, signatures and semantics:

==============================  =============================================
wrapper                         the wrapped function ...
==============================  =============================================
``FlattenFunctionInput``        takes flat vectors where the original takes
                                folded values (it folds them)
``FoldFunctionInput``           takes folded values where the original takes
                                flat vectors (it flattens them)
``FlattenFunctionOutput``       returns flat vectors where the original
                                returns folded values
``FoldFunctionOutput``          returns folded values where the original
                                returns flat vectors
``Flatten/FoldFunction-``       both at once
``InputAndOutput``
``TransformFunctionInput``,     the general forms, with ``original_is_flat``
``TransformFunctionOutput``     choosing the direction
==============================  =============================================

``argnums`` (``retnums``) give the positions of the converted arguments
(return values), ``patterns`` the pattern of each, and ``free`` whether each
flat vector is the free parameterisation (one flag for all, or one per
pattern; ``None`` means the pattern's ``free_default``). Other arguments and
all keyword arguments pass through unchanged. The wrappers are plain
callables that autograd differentiates through, forward and reverse, to any
order.

Beyond paragami, the constructor arguments are checked (lengths, duplicates,
negative positions, things that are not patterns), a call that does not
supply a converted argument positionally, or a function that returns fewer
values than ``retnums`` needs, gets a clear error, and errors from folding or
flattening say which argument or return value they came from.

Examples
--------
>>> import numpy as np
>>> from refold import NumericArrayPattern, FlattenFunctionInput
>>> pattern = NumericArrayPattern((2,), lb=0.0)
>>> def log_norm(offset, x):
...     return np.log(np.sum(x ** 2) + offset)
>>> flat_fun = FlattenFunctionInput(log_norm, pattern, free=True, argnums=1)
>>> x = np.array([1.0, 2.0])
>>> bool(np.isclose(flat_fun(1.0, pattern.flatten(x, free=True)),
...                 log_norm(1.0, x)))
True
"""
from __future__ import annotations

import inspect
import numbers
from typing import Any, Callable, Optional, Sequence, Union

import numpy as onp

from refold.patterns._checks import check_callable, check_free_flag
from refold.patterns.errors import PatternArgumentError

__all__ = ["TransformFunctionInput", "TransformFunctionOutput",
           "FlattenFunctionInput", "FoldFunctionInput",
           "FlattenFunctionOutput", "FoldFunctionOutput",
           "FlattenFunctionInputAndOutput", "FoldFunctionInputAndOutput"]

IntOrInts = Union[int, Sequence[int], None]
BoolOrBools = Union[bool, None, Sequence[Optional[bool]]]


# ----------------------------------------------------------------------
# Argument checks.

def _fun_name(fun: Any) -> str:
    name = getattr(fun, "__qualname__", None) or getattr(fun, "__name__", None)
    return name if isinstance(name, str) else repr(fun)


def _as_list(value: Any) -> list:
    """A single item or a 1-d sequence / array as a list."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, onp.ndarray):
        if value.ndim > 1:
            raise ValueError("expected a single value or a 1-d sequence, got "
                             "an array of shape {}".format(value.shape))
        return list(value.reshape(-1))
    return [value]


def _check_patterns(patterns: Any, name: str) -> tuple:
    try:
        items = _as_list(patterns)
    except ValueError as err:
        raise ValueError("{}: {}".format(name, err)) from None
    if not items:
        raise ValueError("{}: expected a pattern or a non-empty list of "
                         "patterns, got an empty list".format(name))
    for i, pattern in enumerate(items):
        if not (callable(getattr(pattern, "fold", None)) and
                callable(getattr(pattern, "flatten", None))):
            where = name if len(items) == 1 and not isinstance(
                patterns, (list, tuple, onp.ndarray)) else \
                "{}[{}]".format(name, i)
            raise PatternArgumentError(
                "{}: expected a pattern (with fold and flatten methods), "
                "got {!r}".format(where, pattern))
    return tuple(items)


def _check_free(free: Any, patterns: tuple, name: str,
                pattern_name: str) -> tuple:
    try:
        flags = _as_list(free)
    except ValueError as err:
        raise ValueError("{}: {}".format(name, err)) from None
    if len(flags) == 1:
        flags = flags * len(patterns)
    if len(flags) != len(patterns):
        raise ValueError(
            "{}: expected one flag or one per pattern ({} patterns), got {} "
            "flags".format(name, len(patterns), len(flags)))
    out = []
    for i, (flag, pattern) in enumerate(zip(flags, patterns)):
        if flag is None:
            if getattr(pattern, "free_default", None) is None:
                raise ValueError(
                    "{}[{}]: None means the pattern's free_default, but "
                    "{}[{}] has free_default=None; pass True or "
                    "False".format(name, i, pattern_name, i))
            out.append(None)
        elif isinstance(flag, (bool, onp.bool_)):
            out.append(bool(flag))
        else:
            raise PatternArgumentError("{}[{}]: expected True, False or None, got "
                            "{!r}".format(name, i, flag))
    return tuple(out)


def _check_nums(nums: Any, patterns: tuple, name: str,
                pattern_name: str) -> tuple:
    if nums is None:
        return tuple(range(len(patterns)))
    try:
        items = _as_list(nums)
    except ValueError as err:
        raise ValueError("{}: {}".format(name, err)) from None
    out = []
    for num in items:
        if isinstance(num, (bool, onp.bool_)) or \
                not isinstance(num, (numbers.Integral, onp.integer)):
            raise PatternArgumentError("{}: expected non-negative integer positions, "
                            "got {!r}".format(name, nums))
        if num < 0:
            raise ValueError(
                "{}: expected non-negative positions (counted from the "
                "first argument or return value), got {}".format(
                    name, int(num)))
        out.append(int(num))
    if len(out) != len(patterns):
        raise ValueError(
            "{}: expected one position per pattern ({} in {}), got {} "
            "positions {}".format(name, len(patterns), pattern_name,
                                  len(out), out))
    if len(set(out)) != len(out):
        dups = sorted({n for n in out if out.count(n) > 1})
        raise ValueError("{}: positions must be distinct, got {} with {} "
                         "repeated".format(name, out, dups))
    return tuple(out)


def _positional_name(fun: Any, position: int) -> Optional[str]:
    """The name of ``fun``'s parameter at ``position``, if it has one."""
    try:
        sig = inspect.signature(fun)
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY,
             inspect.Parameter.POSITIONAL_OR_KEYWORD)
    params = [p for p in sig.parameters.values() if p.kind in kinds]
    return params[position].name if position < len(params) else None


def _with_context(err: Exception, context: str) -> Exception:
    """The same kind of exception with ``context`` in front of its message."""
    try:
        new = type(err)("{}: {}".format(context, err))
    except Exception:  # exotic exception signatures: keep the original
        return err
    return new.with_traceback(err.__traceback__)


def _convert(pattern, value, free, to_flat: bool, context: str):
    try:
        if to_flat:
            return pattern.flatten(value, free=free)
        return pattern.fold(value, free=free)
    except (ValueError, TypeError) as err:
        raise _with_context(err, context) from None


# ----------------------------------------------------------------------
# The general wrappers.

class _Transform:
    """What the input and output transforms share: the checked constructor
    arguments, their accessors and the repr.

    ``_names`` are the names of the ``patterns``, ``free`` and positions
    arguments used in messages (the input-and-output wrappers prefix them).
    """

    _names = ("patterns", "free", "nums")

    def __init__(self, original_fun: Callable, patterns, free: BoolOrBools,
                 original_is_flat: bool, nums: IntOrInts):
        self._fun = check_callable(original_fun, "original_fun")
        pname, fname, nname = self._names
        self._patterns = _check_patterns(patterns, pname)
        self.free = _check_free(free, self._patterns, fname, pname)
        self._nums = _check_nums(nums, self._patterns, nname, pname)
        self._original_is_flat = check_free_flag(original_is_flat,
                                                 "original_is_flat")
        self._max_num = max(self._nums)
        # Lets inspect.signature (and the check of keyword arguments) see
        # the original's parameter names through any number of wrappers.
        self.__wrapped__ = original_fun

    @property
    def original_fun(self) -> Callable:
        """The wrapped function."""
        return self._fun

    @property
    def patterns(self) -> tuple:
        """The patterns of the converted values, one per position."""
        return self._patterns

    @property
    def original_is_flat(self) -> bool:
        """Whether ``original_fun`` takes (returns) flat vectors."""
        return self._original_is_flat

    def _fields(self) -> list:
        pname, fname, nname = self._names
        return [("original_fun", _fun_name(self._fun)),
                (pname, repr(list(self._patterns))),
                (fname, repr(list(self.free))),
                (nname, repr(list(self._nums)))]

    def __repr__(self):
        fields = self._fields()
        if type(self) in (TransformFunctionInput, TransformFunctionOutput):
            fields.append(("original_is_flat", repr(self._original_is_flat)))
        return "{}({})".format(type(self).__name__, ", ".join(
            "{}={}".format(k, v) for k, v in fields))


class TransformFunctionInput(_Transform):
    r"""Convert some arguments of a function between folded and flat form.

    Parameters
    ----------
    original_fun : callable
        The function to wrap.
    patterns : Pattern or list of Pattern
        The pattern of each converted argument.
    free : bool, None or list of them
        Whether each flat argument is free (``None``: the pattern's
        ``free_default``); one value applies to every pattern.
    original_is_flat : bool
        ``True``: ``original_fun`` takes flat vectors and the wrapper takes
        folded values (it flattens them). ``False``: the reverse (it folds).
    argnums : int or list of int, optional
        The positions of the converted arguments, one per pattern, counted
        from 0 among the positional arguments. Defaults to
        ``0, 1, ..., len(patterns) - 1``.

    Raises
    ------
    ValueError
        If the lengths of ``patterns``, ``free`` and ``argnums`` disagree,
        ``argnums`` repeats or is negative.
    TypeError
        If ``original_fun`` is not callable, a pattern is not a pattern or a
        flag is not a bool.

    Notes
    -----
    The converted arguments must be passed positionally: the wrapper cannot
    tell whether a keyword argument is in folded or flat form, so a call
    that passes one by keyword raises a ``TypeError``. Keyword arguments not
    in ``argnums`` are passed through unchanged.
    """

    _names = ("patterns", "free", "argnums")

    def __init__(self, original_fun: Callable, patterns, free: BoolOrBools,
                 original_is_flat: bool, argnums: IntOrInts = None):
        super().__init__(original_fun, patterns, free, original_is_flat,
                         argnums)
        # Converted in increasing position, so that a missing argument is
        # reported at the first position that is missing.
        order = onp.argsort(self._nums, kind="stable")
        self._plan = tuple((self._nums[i], self._patterns[i], self.free[i],
                            int(i)) for i in order)

    @property
    def argnums(self) -> tuple:
        """Positions of the converted arguments."""
        return self._nums

    def _missing(self, args: tuple, kwargs: dict, nname: str):
        for num, _, _, i in self._plan:
            if num < len(args):
                continue
            name = _positional_name(self._fun, num)
            if name is not None and name in kwargs:
                raise TypeError(
                    "{}: argument {!r} (position {}, {}[{}]) was passed by "
                    "keyword; the wrapper converts only positional arguments, "
                    "so pass it positionally".format(
                        _fun_name(self._fun), name, num, nname, i))
            raise TypeError(
                "{}: {}[{}] = {} needs at least {} positional arguments, got "
                "{}".format(_fun_name(self._fun), nname, i, num, num + 1,
                            len(args)))

    def __call__(self, *args, **kwargs):
        if self._max_num >= len(args):
            self._missing(args, kwargs, self._names[2])
        new_args = list(args)
        to_flat = self._original_is_flat
        nname = self._names[2]
        for num, pattern, free, i in self._plan:
            new_args[num] = _convert(
                pattern, args[num], free, to_flat,
                "argument {} ({}[{}])".format(num, nname, i))
        return self._fun(*new_args, **kwargs)


class TransformFunctionOutput(_Transform):
    r"""Convert some return values of a function between folded and flat form.

    Parameters
    ----------
    original_fun : callable
        The function to wrap. It returns either one value (any non-tuple,
        with ``retnums`` ``0``) or a tuple of values.
    patterns : Pattern or list of Pattern
        The pattern of each converted return value.
    free : bool, None or list of them
        Whether each flat value is free (``None``: the pattern's
        ``free_default``); one value applies to every pattern.
    original_is_flat : bool
        ``True``: ``original_fun`` returns flat vectors and the wrapper
        returns them folded. ``False``: the reverse.
    retnums : int or list of int, optional
        Positions of the converted values in the returned tuple, one per
        pattern. Defaults to ``0, 1, ..., len(patterns) - 1``.

    Raises
    ------
    ValueError
        As :class:`TransformFunctionInput` for the constructor; when called,
        if ``original_fun`` returns fewer values than ``retnums`` needs.
    """

    _names = ("patterns", "free", "retnums")

    def __init__(self, original_fun: Callable, patterns, free: BoolOrBools,
                 original_is_flat: bool, retnums: IntOrInts = None):
        super().__init__(original_fun, patterns, free, original_is_flat,
                         retnums)
        self._plan = tuple(zip(self._nums, self._patterns, self.free,
                               range(len(self._patterns))))

    @property
    def retnums(self) -> tuple:
        """Positions of the converted return values."""
        return self._nums

    def __call__(self, *args, **kwargs):
        rets = self._fun(*args, **kwargs)
        to_flat = not self._original_is_flat
        nname = self._names[2]
        if not isinstance(rets, tuple):
            if self._nums != (0,):
                raise ValueError(
                    "{}: {} returned a single value (not a tuple), which "
                    "only {}=0 can convert; got {}={}".format(
                        nname, _fun_name(self._fun), nname, nname,
                        list(self._nums)))
            _, pattern, free, _ = self._plan[0]
            return _convert(pattern, rets, free, to_flat,
                            "the return value ({}[0])".format(nname))
        if self._max_num >= len(rets):
            raise ValueError(
                "{}: {} asks for return value {}, but {} returned {} "
                "value{}".format(nname, list(self._nums), self._max_num,
                                 _fun_name(self._fun), len(rets),
                                 "" if len(rets) == 1 else "s"))
        new_rets = list(rets)
        for num, pattern, free, i in self._plan:
            new_rets[num] = _convert(
                pattern, rets[num], free, to_flat,
                "return value {} ({}[{}])".format(num, nname, i))
        return tuple(new_rets)


# ----------------------------------------------------------------------
# The one-directional conveniences.

class FlattenFunctionInput(TransformFunctionInput):
    r"""A function of folded values, made a function of flat vectors.

    The wrapper folds the arguments at ``argnums`` with ``patterns`` (free
    or not, per ``free``) and calls ``original_fun``. See
    :class:`TransformFunctionInput`.

    Examples
    --------
    >>> import numpy as np
    >>> from refold import NumericArrayPattern, FlattenFunctionInput
    >>> pattern = NumericArrayPattern((2,), lb=0.0)
    >>> total = FlattenFunctionInput(np.sum, pattern, free=True)
    >>> float(total(np.zeros(2)))  # exp(0) + exp(0)
    2.0
    """

    def __init__(self, original_fun: Callable, patterns, free: BoolOrBools,
                 argnums: IntOrInts = None):
        super().__init__(original_fun, patterns, free,
                         original_is_flat=False, argnums=argnums)


class FoldFunctionInput(TransformFunctionInput):
    r"""A function of flat vectors, made a function of folded values.

    The wrapper flattens the arguments at ``argnums`` with ``patterns`` and
    calls ``original_fun``. See :class:`TransformFunctionInput`.
    """

    def __init__(self, original_fun: Callable, patterns, free: BoolOrBools,
                 argnums: IntOrInts = None):
        super().__init__(original_fun, patterns, free,
                         original_is_flat=True, argnums=argnums)


class FlattenFunctionOutput(TransformFunctionOutput):
    r"""A function returning folded values, made to return flat vectors.

    See :class:`TransformFunctionOutput`.
    """

    def __init__(self, original_fun: Callable, patterns, free: BoolOrBools,
                 retnums: IntOrInts = None):
        super().__init__(original_fun, patterns, free,
                         original_is_flat=False, retnums=retnums)


class FoldFunctionOutput(TransformFunctionOutput):
    r"""A function returning flat vectors, made to return folded values.

    See :class:`TransformFunctionOutput`.
    """

    def __init__(self, original_fun: Callable, patterns, free: BoolOrBools,
                 retnums: IntOrInts = None):
        super().__init__(original_fun, patterns, free,
                         original_is_flat=True, retnums=retnums)


class _InputPart(TransformFunctionInput):
    _names = ("input_patterns", "input_free", "input_argnums")


class _OutputPart(TransformFunctionOutput):
    _names = ("output_patterns", "output_free", "output_retnums")


class _InputOutputMixin:
    """Output conversion inside, input conversion outside; both in the
    direction ``_original_is_flat`` of the subclass."""

    _original_is_flat = None

    def __init__(self, original_fun: Callable, input_patterns,
                 input_free: BoolOrBools, input_argnums: IntOrInts,
                 output_patterns, output_free: BoolOrBools,
                 output_retnums: IntOrInts = None):
        self._output = _OutputPart(original_fun, output_patterns, output_free,
                                   self._original_is_flat, output_retnums)
        self._input = _InputPart(self._output, input_patterns, input_free,
                                 self._original_is_flat, input_argnums)
        self.__wrapped__ = original_fun

    @property
    def original_fun(self) -> Callable:
        """The wrapped function."""
        return self._output.original_fun

    def __call__(self, *args, **kwargs):
        return self._input(*args, **kwargs)

    def __repr__(self):
        fields = ([("original_fun", _fun_name(self.original_fun))] +
                  self._input._fields()[1:] + self._output._fields()[1:])
        return "{}({})".format(type(self).__name__, ", ".join(
            "{}={}".format(k, v) for k, v in fields))


class FlattenFunctionInputAndOutput(_InputOutputMixin):
    r"""A function of folded values returning folded values, made a function
    of flat vectors returning flat vectors.

    Parameters
    ----------
    original_fun : callable
        The function to wrap.
    input_patterns, input_free, input_argnums
        As ``patterns``, ``free``, ``argnums`` of
        :class:`FlattenFunctionInput` (``input_argnums`` is required, as in
        paragami; ``None`` means ``0, 1, ...``).
    output_patterns, output_free, output_retnums
        As ``patterns``, ``free``, ``retnums`` of
        :class:`FlattenFunctionOutput`.
    """

    _original_is_flat = False


class FoldFunctionInputAndOutput(_InputOutputMixin):
    r"""A function of flat vectors returning flat vectors, made a function of
    folded values returning folded values.

    Parameters are as for :class:`FlattenFunctionInputAndOutput`.
    """

    _original_is_flat = True
