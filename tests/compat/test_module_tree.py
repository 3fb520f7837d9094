"""Item 1: refold.compat mirrors paragami's and vittles' module trees with
refold's own objects, and every public name of the anchors' modules exists.
"""
import importlib
import inspect

import pytest

import refold
from refold.compat import paragami as cparagami
from refold.compat import vittles as cvittles

#: Public names of paragami 0.42 / vittles 0.173 modules (recorded from the
#: anchors; checked against them below when they are installed), minus those
#: the porting guide lists as not provided.
PARAGAMI = {
    "base_patterns": ["Pattern"],
    "numeric_array_patterns": ["NumericArrayPattern", "NumericVectorPattern",
                               "NumericScalarPattern"],
    "psdmatrix_patterns": ["PSDSymmetricMatrixPattern"],
    "simplex_patterns": ["SimplexArrayPattern", "logsumexp"],
    "pattern_containers": ["PatternDict", "PatternArray",
                           "register_pattern_json", "get_pattern_from_json",
                           "save_folded", "load_folded"],
    "function_patterns": [
        "TransformFunctionInput", "FoldFunctionInput", "FlattenFunctionInput",
        "TransformFunctionOutput", "FoldFunctionOutput",
        "FlattenFunctionOutput", "FoldFunctionInputAndOutput",
        "FlattenFunctionInputAndOutput"],
    "optimization_lib": ["truncate_eigenvalues", "transform_eigenspace",
                         "PreconditionedFunction", "OptimizationObjective"],
    "autograd_supplement_lib": ["get_sparse_product",
                                "get_differentiable_solver", "grouped_sum",
                                "replace"],
    "sparse_preconditioners_lib": ["get_sym_matrix_inv_sqrt_funcs"],
}
VITTLES = {
    "sensitivity_lib": ["get_linear_function",
                        "EstimatingEquationLinearApproximation",
                        "HyperparameterSensitivityLinearApproximation",
                        "ParametricSensitivityTaylorExpansion"],
    "solver_lib": ["get_dense_cholesky_solver", "get_sparse_cholesky_solver",
                   "get_cholesky_solver", "get_cg_solver"],
    "lr_cov_lib": ["LinearResponseCovariances"],
    "sparse_hessian_lib": ["SparseBlockHessian"],
    "bivariate_sensitivity_lib": ["CrossSensitivity", "OptimumChecker"],
}
#: vittles' internal Taylor-series machinery, deliberately not provided
#: (docs/porting.rst, "Module paths").
NOT_PROVIDED = {"DerivativeTerm", "ForwardModeDerivativeArray",
                "ReverseModeDerivativeArray",
                "ReorderedReverseModeDerivativeArray"}


@pytest.mark.parametrize("package, table", [("paragami", PARAGAMI),
                                            ("vittles", VITTLES)])
def test_every_module_and_name_is_there(package, table):
    for module_name, names in table.items():
        module = importlib.import_module(
            "refold.compat.{}.{}".format(package, module_name))
        top = getattr(refold.compat, package)
        assert getattr(top, module_name) is module
        for name in names:
            obj = getattr(module, name)
            assert obj.__module__.startswith("refold."), (module_name, name)
            assert not obj.__module__.startswith("refold.compat"), name


def test_top_levels_are_refold_objects():
    for name in ["PatternDict", "PatternArray", "NumericArrayPattern",
                 "PSDSymmetricMatrixPattern", "SimplexArrayPattern",
                 "FoldFunctionInput", "OptimizationObjective",
                 "register_pattern_json", "save_folded"]:
        assert getattr(cparagami, name) is getattr(refold, name)
    for name in ["HyperparameterSensitivityLinearApproximation",
                 "ParametricSensitivityTaylorExpansion",
                 "SparseBlockHessian", "LinearResponseCovariances"]:
        assert getattr(cvittles, name) is getattr(refold, name)
    assert refold.sensitivity_lib is cvittles.sensitivity_lib
    assert refold.solver_lib.get_cholesky_solver is \
        cvittles.solver_lib.get_cholesky_solver


def test_one_line_port():
    namespace = {}
    exec("from refold.compat import paragami, vittles\n"
         "from refold.compat.paragami.base_patterns import Pattern\n"
         "from refold.compat.vittles.sensitivity_lib import "
         "HyperparameterSensitivityLinearApproximation\n"
         "import refold.compat.paragami.pattern_containers as pc\n",
         namespace)
    assert namespace["Pattern"] is refold.Pattern
    assert namespace["pc"].register_pattern_json is \
        refold.register_pattern_json


def _public(module):
    return {name for name, obj in vars(module).items()
            if not name.startswith("_") and (inspect.isclass(obj) or
                                             inspect.isfunction(obj))
            and getattr(obj, "__module__", "") == module.__name__}


def test_recorded_names_match_the_anchors(paragami, vittles):
    """The recorded tables are every public class/function the anchors
    define in those modules (autograd primitives included)."""
    for package, table in ((paragami, PARAGAMI), (vittles, VITTLES)):
        for module_name, names in table.items():
            if module_name == "sparse_preconditioners_lib":
                continue  # paragami's needs scikit-sparse to import
            module = importlib.import_module(
                "{}.{}".format(package.__name__, module_name))
            defined = _public(module) | {
                name for name, obj in vars(module).items()
                if not name.startswith("_") and callable(obj) and
                getattr(obj, "__module__", None) == module.__name__}
            defined -= NOT_PROVIDED
            # Private-use helpers the anchors define at module level.
            defined -= {"T", "inv_jvp", "jvp_solve", "slogdet_jvp",
                        "grouped_sum_vjp", "grouped_sum_jvp"}
            assert defined <= set(names) | {"get_sparse_product",
                                            "get_differentiable_solver"}, \
                (module_name, defined - set(names))
