"""EMCovariance's solver='auto' and explicit solvers (issue 12).

Truths: every explicit solver gives the same marginal Hessian as 'auto' to
1e-10, and the dense Schur complement of autograd's joint Hessian.
"""
import autograd.numpy as np
import numpy as onp
import pytest

from refold.models.em_covariance import EMCovariance
from refold.patterns.containers import PatternDict
from refold.patterns.numeric import NumericArrayPattern
from refold.sensitivity.structure import HessianStructure
from tests.models.test_em_covariance import Mixture, neg_objective_log


@pytest.fixture(scope="module")
def mixture():
    rng = onp.random.default_rng(3)
    y = onp.concatenate([rng.normal(-1.0, 1.0, 90), rng.normal(2.0, 1.0, 60)])
    return Mixture(y)


def _rel(a, b):
    return onp.max(onp.abs(a - b)) / onp.max(onp.abs(b))


def test_auto_is_the_arrowhead_structure_and_says_so(mixture):
    em = mixture.em_log()
    assert isinstance(em.structure, HessianStructure)
    assert em.structure.kind == "arrowhead"
    onp.testing.assert_array_equal(em.structure.global_inds, [0, 1, 2])
    assert em.structure.local_inds.shape == (150, 1)
    text = em.describe()
    assert text.startswith("arrowhead: 3 globals (theta), 150 blocks of 1")
    assert "eta_blocks read off eta_pattern" in text
    assert "5 HVPs" in text


@pytest.mark.parametrize("solver", ["arrowhead", "dense", "sparse"])
def test_auto_equals_every_explicit_solver(mixture, solver):
    auto = mixture.em_log()
    other = mixture.em_log(solver=solver)
    assert other.structure.kind == {"arrowhead": "arrowhead",
                                    "dense": "dense",
                                    "sparse": "sparse"}[solver]
    assert f"solver={solver!r} chosen by the caller" in other.describe()
    assert _rel(other.marginal_hessian(), auto.marginal_hessian()) < 1e-10
    assert _rel(other.covariance(), auto.covariance()) < 1e-10
    assert _rel(other.theta_hessian, auto.theta_hessian) < 1e-12
    # ... and the dense Schur complement of autograd's joint Hessian.
    hess, p = mixture.dense_joint_hessian(), 3
    dense = hess[:p, :p] - hess[:p, p:] @ onp.linalg.solve(hess[p:, p:],
                                                           hess[p:, :p])
    assert _rel(other.marginal_hessian(), dense) < 1e-10


def test_auto_detects_blocks_when_the_pattern_has_no_observation_axis(
        mixture):
    y, n = mixture.y, len(mixture.y)
    eta_pattern = PatternDict()          # two members of different lengths:
    eta_pattern["head"] = NumericArrayPattern((40,))   # no common axis
    eta_pattern["tail"] = NumericArrayPattern((n - 40,))
    eta = {"head": mixture.log_ratio[:40, 0], "tail": mixture.log_ratio[40:, 0]}

    def objective(theta, eta):
        full = np.concatenate([eta["head"], eta["tail"]])[:, None]
        return neg_objective_log(theta, full, y)

    em = EMCovariance(objective, mixture.pattern, eta_pattern,
                      mixture.theta, eta)
    assert em.structure.source == "detected"
    assert "detected from objective_fun" in em.describe()
    assert em.eta_blocks.shape == (n, 1)
    assert _rel(em.marginal_hessian(),
                mixture.em_log().marginal_hessian()) < 1e-10
    with pytest.raises(ValueError, match="eta_pattern"):
        EMCovariance(objective, mixture.pattern, eta_pattern,
                     mixture.theta, eta, solver="arrowhead")


def test_bad_solver(mixture):
    with pytest.raises(ValueError, match="solver must be one of"):
        mixture.em_log(solver="qr")
    with pytest.raises(TypeError, match="solver must be one of"):
        mixture.em_log(solver=3)
