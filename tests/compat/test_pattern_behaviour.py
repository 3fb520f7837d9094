"""Items 5-9: numpy and PatternDict, OrderedDict folds, to_json of a custom
pattern, random() from numpy's global generator, JSON paragami reads."""
import collections
import json

import numpy as np
import pytest

import refold
from refold.patterns.paragami_format import to_paragami_json


def _dict_pattern():
    pattern = refold.PatternDict(free_default=True)
    pattern["mu"] = refold.NumericVectorPattern(2, lb=-1.0)
    pattern["cov"] = refold.PSDSymmetricMatrixPattern(2, diag_lb=0.1)
    pattern["w"] = refold.SimplexArrayPattern(3, (2,))
    pattern["arr"] = refold.PatternArray((2,), refold.NumericScalarPattern(
        ub=4.0))
    return pattern


def test_numpy_sees_one_object():
    p, q = _dict_pattern(), _dict_pattern()
    one = np.atleast_1d(p)
    assert one.shape == (1,) and one.dtype == object and one[0] is p
    both = np.array([p, q])
    assert both.shape == (2,) and both[1] is q
    assert len(p) == 4 and list(p) == ["mu", "cov", "w", "arr"]  # Mapping
    with pytest.raises(TypeError):
        np.asarray(p, dtype=float)


def test_folds_are_ordered_dicts():
    p = _dict_pattern()
    for value in (p.fold(np.zeros(p.flat_length())), p.empty(True),
                  p.random(), refold.PatternArray((3,), p).empty(True)):
        assert type(value) is collections.OrderedDict
        assert list(value) == ["mu", "cov", "w", "arr"]


def test_random_uses_numpy_global_generator():
    p = _dict_pattern()
    np.random.seed(42)
    first = p.random()
    after = np.random.random()
    np.random.seed(42)
    free = np.random.random(p.flat_length(free=True))  # paragami's draw
    np.testing.assert_allclose(p.flatten(first, free=True), free)
    assert np.random.random() == after               # same stream after
    a, b = p.random(rng=3), p.random(rng=3)          # explicit rng: as before
    np.testing.assert_array_equal(p.flatten(a), p.flatten(b))


def test_random_matches_paragami(paragami):
    ours = refold.PSDSymmetricMatrixPattern(3)
    theirs = paragami.PSDSymmetricMatrixPattern(3)
    np.random.seed(7)
    a = ours.random()
    np.random.seed(7)
    b = theirs.random()
    np.testing.assert_allclose(a, b, rtol=1e-12)


class _Renamed(refold.NumericVectorPattern):
    """A custom pattern written to paragami's contract: as_dict() names it
    differently from json_typename()."""

    def as_dict(self):
        spec = super().as_dict()
        spec["pattern"] = "mylab.Renamed"
        return spec


def test_to_json_of_a_custom_pattern():
    text = _Renamed(2).to_json()
    assert json.loads(text)["pattern"] == "mylab.Renamed"
    with pytest.raises(KeyError, match="mylab.Renamed"):
        refold.get_pattern_from_json(text)


def test_paragami_json_round_trips_through_refold():
    p = _dict_pattern()
    text = to_paragami_json(p)
    assert "Infinity" in text                 # paragami's tokens
    back = refold.get_pattern_from_json(text)
    assert list(back) == list(p)
    for key in p:
        assert back[key] == p[key]
    with pytest.raises(ValueError, match="CorrelationMatrixPattern"):
        to_paragami_json(refold.CorrelationMatrixPattern(3))
    with pytest.raises(ValueError, match="PatternDict"):
        to_paragami_json(refold.PatternArray((2,), _dict_pattern()))


def test_paragami_reads_it(paragami):
    p = _dict_pattern()
    theirs = paragami.get_pattern_from_json(to_paragami_json(p))
    value = p.random(rng=0)
    flat = p.flatten(value, free=True)
    np.testing.assert_allclose(theirs.flatten(theirs.fold(flat, free=True),
                                              free=True), flat)
    folded = theirs.fold(flat, free=True)
    for key in p:
        np.testing.assert_allclose(folded[key], value[key], rtol=1e-10)
    # Leaves keep free_default (paragami's constructors take it).
    leaf = paragami.get_pattern_from_json(to_paragami_json(
        refold.PSDSymmetricMatrixPattern(2, free_default=True)))
    assert leaf.free_default is True
