"""``paragami.function_patterns``: :mod:`refold.patterns.function_wrappers`."""
from refold.patterns.function_wrappers import (  # noqa: F401
    FlattenFunctionInput, FlattenFunctionInputAndOutput,
    FlattenFunctionOutput, FoldFunctionInput, FoldFunctionInputAndOutput,
    FoldFunctionOutput, TransformFunctionInput, TransformFunctionOutput)

__all__ = ["TransformFunctionInput", "FoldFunctionInput",
           "FlattenFunctionInput", "TransformFunctionOutput",
           "FoldFunctionOutput", "FlattenFunctionOutput",
           "FoldFunctionInputAndOutput", "FlattenFunctionInputAndOutput"]
