"""Patterns: fold and flatten structured parameters to and from flat vectors.

Dependencies only flow downward: this subpackage imports nothing from
``refold.sensitivity`` or ``refold.models``.
"""
# Registers the forward-mode linalg rules autograd lacks (cholesky, inv,
# solve, det, slogdet, eigh, ...): see that module's documentation.
import refold.patterns.autograd_rules  # noqa: F401
# Forward-mode rules for autograd.scipy.special / .stats, registered when
# autograd.scipy is imported (lazily: refold does not import it).
import refold.patterns.special_rules  # noqa: F401
from refold.patterns.base import Pattern
from refold.patterns.errors import (
    PatternArgumentError, PatternJSONError, UnknownPatternError)
from refold.patterns.containers import PatternArray, PatternDict
from refold.patterns.correlation import CorrelationMatrixPattern
from refold.patterns.function_wrappers import (
    FlattenFunctionInput, FlattenFunctionInputAndOutput, FlattenFunctionOutput,
    FoldFunctionInput, FoldFunctionInputAndOutput, FoldFunctionOutput,
    TransformFunctionInput, TransformFunctionOutput)
from refold.patterns.numeric import (
    NumericArrayPattern, NumericScalarPattern, NumericVectorPattern)
from refold.patterns.json_io import (
    get_pattern_from_json, load_folded, register_pattern_json, save_folded)
from refold.patterns.optimization import (
    OptimizationObjective, PreconditionedFunction)
from refold.patterns.psd import PSDSymmetricMatrixPattern
from refold.patterns.simplex import SimplexArrayPattern

__all__ = [
    "Pattern", "NumericArrayPattern", "NumericVectorPattern",
    "NumericScalarPattern", "PSDSymmetricMatrixPattern", "SimplexArrayPattern", "CorrelationMatrixPattern",
    "PatternDict", "PatternArray",
    "FlattenFunctionInput", "FoldFunctionInput", "FlattenFunctionOutput",
    "FoldFunctionOutput", "FoldFunctionInputAndOutput",
    "FlattenFunctionInputAndOutput", "TransformFunctionInput",
    "TransformFunctionOutput", "OptimizationObjective",
    "PreconditionedFunction", "register_pattern_json",
    "get_pattern_from_json", "save_folded", "load_folded",
    "PatternArgumentError", "UnknownPatternError", "PatternJSONError",
]
