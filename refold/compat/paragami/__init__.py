"""paragami 0.42's top level and module tree, re-exporting refold."""
from refold.patterns import (  # noqa: F401
    FlattenFunctionInput, FlattenFunctionInputAndOutput,
    FlattenFunctionOutput, FoldFunctionInput, FoldFunctionInputAndOutput,
    FoldFunctionOutput, NumericArrayPattern, NumericScalarPattern,
    NumericVectorPattern, OptimizationObjective, Pattern, PatternArray,
    PatternDict, PreconditionedFunction, PSDSymmetricMatrixPattern,
    SimplexArrayPattern, TransformFunctionInput, TransformFunctionOutput,
    get_pattern_from_json, load_folded, register_pattern_json, save_folded)
from refold.compat.paragami import (  # noqa: F401
    autograd_supplement_lib, base_patterns, function_patterns,
    numeric_array_patterns, optimization_lib, pattern_containers,
    psdmatrix_patterns, simplex_patterns, sparse_preconditioners_lib)
