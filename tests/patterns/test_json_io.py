"""Pattern JSON (standard, lossless, safe, paragami-compatible) and files."""
import io
import json
import sys

import autograd.numpy as anp
import numpy as np
import pytest
from autograd.tracer import getval

from refold.patterns import json_io
from refold.patterns.base import Pattern
from refold.patterns.containers import PatternArray, PatternDict
from refold.patterns.correlation import CorrelationMatrixPattern
from refold.patterns.json_io import (
    get_pattern_from_json, load_folded, pattern_from_json, pattern_to_json,
    register_pattern_json, save_folded)
from refold.patterns.numeric import (
    NumericArrayPattern, NumericScalarPattern, NumericVectorPattern)
from refold.patterns.psd import PSDSymmetricMatrixPattern
from refold.patterns.simplex import SimplexArrayPattern
from refold.testing import assert_folded_allclose


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch):
    """Each test registers its own classes into an empty user registry."""
    monkeypatch.setattr(json_io, "_user_registry", {})


def strict_loads(text):
    """json.loads that rejects Infinity/NaN tokens (standard JSON only)."""
    def reject(token):
        raise AssertionError("non-standard JSON token " + token)
    return json.loads(text, parse_constant=reject)


def nested_dict_pattern():
    inner = PatternDict(free_default=False)
    inner["corr"] = CorrelationMatrixPattern(3)
    inner["w"] = SimplexArrayPattern(3, (2,), free_default=True)
    outer = PatternDict(free_default=True)
    outer["mean"] = NumericVectorPattern(2, lb=-np.inf, ub=4.0)
    outer["covs"] = PatternArray((2,), PSDSymmetricMatrixPattern(
        2, diag_lb=0.5, free_default=False), free_default=False)
    outer["inner"] = inner
    outer["many"] = PatternArray((2, 1), inner)
    return outer


ALL_PATTERNS = [
    NumericArrayPattern((2, 3)),
    NumericArrayPattern((2,), lb=-1.0, free_default=True),
    NumericArrayPattern((1, 2), ub=2.5, free_default=False),
    NumericArrayPattern((), lb=-1e300, ub=1e300, default_validate=False),
    NumericVectorPattern(4, lb=0.0, ub=1.0, free_default=True),
    NumericScalarPattern(lb=2.0),
    PSDSymmetricMatrixPattern(3, diag_lb=0.25, free_default=True),
    PSDSymmetricMatrixPattern(2, default_validate=False),
    SimplexArrayPattern(4, (2, 3), free_default=False),
    CorrelationMatrixPattern(3, free_default=True),
    PatternArray((3,), NumericVectorPattern(2, lb=0.0), free_default=True),
    nested_dict_pattern(),
]


@pytest.mark.parametrize("pattern", ALL_PATTERNS, ids=lambda p: "{}-{}".format(
    type(p).__name__, ALL_PATTERNS.index(p)))
def test_round_trip_is_lossless_and_standard(pattern):
    text = pattern.to_json()
    assert text == pattern_to_json(pattern)
    parsed = strict_loads(text)  # no Infinity / NaN tokens
    json.dumps(parsed, allow_nan=False)
    for rebuilt in (get_pattern_from_json(text), type(pattern).from_json(text),
                    Pattern.from_json(text), pattern_from_json(text)):
        assert type(rebuilt) is type(pattern)
        assert rebuilt == pattern
        assert rebuilt.free_default is pattern.free_default
        assert rebuilt.as_dict().keys() == pattern.as_dict().keys()
        assert rebuilt.to_json() == text
    # Same behaviour, not just the same description.
    rebuilt = get_pattern_from_json(text)
    value = pattern.random(rng=3)
    for free in (False, True):
        np.testing.assert_array_equal(rebuilt.flatten(value, free=free),
                                      pattern.flatten(value, free=free))


def test_infinite_bounds_are_tagged_and_nested_patterns_are_objects():
    pattern = PatternDict(free_default=True)
    pattern["x"] = NumericVectorPattern(2, lb=0.0)
    pattern["y"] = PatternArray((2,), NumericScalarPattern(ub=1.0))
    parsed = strict_loads(pattern.to_json())
    assert parsed["pattern"] == "refold.PatternDict"
    assert parsed["keys"] == ["x", "y"]
    x = parsed["contents"]["x"]
    assert isinstance(x, dict)
    assert x["pattern"] == "refold.NumericVectorPattern"
    assert x["ub"] == {"__float__": "inf"} and x["lb"] == 0.0
    base = parsed["contents"]["y"]["base_pattern"]
    assert isinstance(base, dict)
    assert base["lb"] == {"__float__": "-inf"}
    rebuilt = get_pattern_from_json(json.dumps(parsed))
    assert rebuilt["x"].bounds() == (0.0, np.inf)
    assert rebuilt["y"].base_pattern().bounds() == (-np.inf, 1.0)


def test_every_builtin_pattern_is_registered_under_both_names():
    classes = [NumericArrayPattern, NumericVectorPattern, NumericScalarPattern,
               PSDSymmetricMatrixPattern, SimplexArrayPattern,
               CorrelationMatrixPattern, PatternDict, PatternArray]
    for cls in classes:
        assert cls.json_typename() == "refold." + cls.__name__
        assert json_io._lookup(cls.json_typename())[0] is cls
    for old, new in json_io._PARAGAMI_ALIASES.items():
        assert json_io._lookup(old)[0].json_typename() == new


def test_key_order_of_pattern_dict_survives():
    pattern = PatternDict()
    for key in ["zeta", "alpha", "mid"]:
        pattern[key] = NumericScalarPattern()
    rebuilt = get_pattern_from_json(pattern.to_json())
    assert list(rebuilt) == ["zeta", "alpha", "mid"]


# ----------------------------------------------------------------------
# Custom patterns: registration and what as_dict may contain.

class ScaledVector(Pattern):
    """A custom pattern whose as_dict holds numpy scalars and tuples."""

    def __init__(self, length, scale=1.0, tags=(), flag=False,
                 free_default=None):
        self._length, self._scale = int(length), float(scale)
        self._tags, self._flag = tuple(tags), bool(flag)
        super().__init__(self._length, self._length, free_default)

    def fold(self, flat_val, free=None, validate_value=None):
        self._free_with_default(free)
        return anp.array(anp.reshape(flat_val, (self._length,))) * 1.0

    def flatten(self, folded_val, free=None, validate_value=None):
        self._free_with_default(free)
        return anp.array(folded_val) * 1.0

    def empty(self, valid):
        return np.zeros(self._length)

    def validate_folded(self, folded_val, validate_value=None):
        raw = getval(folded_val)
        ok = isinstance(raw, np.ndarray) and raw.shape == (self._length,)
        return (True, "") if ok else (False, "wrong shape")

    def as_dict(self):
        return {"pattern": self.json_typename(),
                "length": np.int64(self._length),
                "scale": np.float32(self._scale) if np.isfinite(self._scale)
                else np.float64(self._scale),
                "tags": tuple(self._tags), "flag": np.bool_(self._flag),
                "free_default": self.free_default}


class OtherVector(ScaledVector):
    pass


def test_numpy_scalars_and_tuples_in_as_dict_are_converted():
    pattern = ScaledVector(np.int32(3), scale=-np.inf, tags=("a", 1),
                           flag=True, free_default=False)
    register_pattern_json(ScaledVector)
    text = pattern.to_json()
    parsed = strict_loads(text)
    assert parsed["length"] == 3 and isinstance(parsed["length"], int)
    assert parsed["scale"] == {"__float__": "-inf"}
    assert parsed["tags"] == ["a", 1] and parsed["flag"] is True
    rebuilt = get_pattern_from_json(text)
    assert rebuilt == pattern and rebuilt.free_default is False
    assert rebuilt._scale == -np.inf


def test_register_pattern_json_contract():
    assert register_pattern_json(ScaledVector) is ScaledVector  # decorator
    register_pattern_json(ScaledVector)  # the same class again is fine
    with pytest.raises(TypeError, match="pattern: .*the class itself.*"
                       "instance of ScaledVector"):
        register_pattern_json(ScaledVector(2))
    with pytest.raises(TypeError, match="pattern: .*Pattern"):
        register_pattern_json(dict)
    with pytest.raises(TypeError, match="pattern: Pattern is abstract"):
        register_pattern_json(Pattern)
    with pytest.raises(TypeError, match="allow_overwrite"):
        register_pattern_json(ScaledVector, allow_overwrite="yes")

    impostor = type("ScaledVector", (ScaledVector,),
                    {"__module__": ScaledVector.__module__})
    with pytest.raises(ValueError, match="pattern: .*already registered.*"
                       "allow_overwrite=True"):
        register_pattern_json(impostor)
    register_pattern_json(impostor, allow_overwrite=True)
    assert type(get_pattern_from_json(ScaledVector(2).to_json())) is impostor


def test_builtin_names_cannot_be_silently_replaced():
    fake = type("Fake", (ScaledVector,), {"_json_name":
                                          "refold.NumericArrayPattern"})
    with pytest.raises(ValueError, match="already registered"):
        register_pattern_json(fake)


def test_unregistered_class_loads_only_through_its_own_from_json():
    pattern = ScaledVector(2, scale=3.0)
    text = pattern.to_json()
    assert ScaledVector.from_json(text) == pattern  # caller names the class
    with pytest.raises(ValueError, match="unknown pattern type "
                       "'.*ScaledVector'.*register_pattern_json"):
        get_pattern_from_json(text)
    with pytest.raises(ValueError, match="OtherVector.from_json"):
        OtherVector.from_json(text)


def test_from_json_checks_the_type():
    psd_json = PSDSymmetricMatrixPattern(2).to_json()
    with pytest.raises(ValueError, match="NumericArrayPattern.from_json.*"
                       "refold.PSDSymmetricMatrixPattern"):
        NumericArrayPattern.from_json(psd_json)
    vector_json = NumericVectorPattern(2).to_json()
    with pytest.raises(ValueError, match="NumericArrayPattern.from_json"):
        NumericArrayPattern.from_json(vector_json)
    with pytest.raises(ValueError, match="PatternDict.from_json"):
        PatternDict.from_json(vector_json)


@pytest.mark.parametrize("text, match", [
    ("{\"pattern\": ", "pattern_json: expected a JSON object.*not valid JSON"),
    ("", "not valid JSON"),
    ("[1, 2]", "pattern_json: expected a JSON object.*got a JSON array"),
    ("\"refold.NumericArrayPattern\"", "got a JSON string"),
    ("{\"shape\": [2]}", "pattern_json: .*string entry 'pattern'.*shape"),
    ("{\"pattern\": 3}", "string entry 'pattern'"),
    ("{\"pattern\": \"no.such.Pattern\"}",
     "unknown pattern type 'no.such.Pattern'.*register_pattern_json.*"
     "refold.NumericArrayPattern"),
    ("{\"pattern\": \"refold.NumericArrayPattern\", \"shape\": [2], "
     "\"lb\": 3, \"ub\": 1}",
     "cannot build a NumericArrayPattern.*lb"),
    ("{\"pattern\": \"refold.NumericArrayPattern\", \"shape\": [2], "
     "\"colour\": \"red\"}", "cannot build a NumericArrayPattern.*colour"),
    ("{\"pattern\": \"refold.NumericScalarPattern\", "
     "\"lb\": {\"__float__\": \"1.5\"}}", r"\['lb'\]: expected.*__float__"),
    ("{\"pattern\": \"refold.NumericScalarPattern\", "
     "\"lb\": {\"__float__\": \"minus infinity\"}}", "__float__"),
    ("{\"pattern\": \"refold.PatternArray\", \"array_shape\": [2], "
     "\"base_pattern\": {\"pattern\": \"evil.Thing\"}}",
     r"pattern_json\['base_pattern'\]: unknown pattern type 'evil.Thing'"),
])
def test_bad_json_gives_value_errors(text, match):
    with pytest.raises(ValueError, match=match):
        get_pattern_from_json(text)


def test_deeply_nested_json_is_a_value_error():
    deep = "[" * 100000 + "]" * 100000
    with pytest.raises(ValueError, match="pattern_json: .*nested too deeply"):
        get_pattern_from_json(deep)


def test_non_string_input_is_a_type_error():
    with pytest.raises(TypeError, match="pattern_json: expected a JSON "
                       "string.*dict"):
        get_pattern_from_json({"pattern": "refold.NumericScalarPattern"})
    assert get_pattern_from_json(
        NumericScalarPattern().to_json().encode()) == NumericScalarPattern()


def test_loading_never_imports_or_runs_what_the_json_names(tmp_path,
                                                           monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "refold_evil_module.py").write_text(
        "open({!r}, 'w').close()\n"
        "from refold.patterns.numeric import NumericScalarPattern as "
        "EvilPattern\n".format(str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ["refold_evil_module.EvilPattern", "os.system",
                 "builtins.eval"]:
        with pytest.raises(ValueError, match="unknown pattern type"):
            get_pattern_from_json(json.dumps({"pattern": name, "lb": 0.0}))
    assert not marker.exists()
    assert "refold_evil_module" not in sys.modules


def test_encoding_errors_name_the_entry():
    class Bad(ScaledVector):
        def __init__(self, extra, **kwargs):
            self.extra = extra
            super().__init__(2, **kwargs)

        def as_dict(self):
            return {"pattern": self.json_typename(), "extra": self.extra}

    with pytest.raises(TypeError, match=r"pattern\['extra'\]\[1\]: cannot "
                       "write a set"):
        Bad([1, {2}]).to_json()
    with pytest.raises(TypeError, match=r"pattern\['extra'\]: JSON object "
                       "keys must be strings"):
        Bad({1: 2}).to_json()
    with pytest.raises(ValueError, match="would be read back as a pattern"):
        Bad({"pattern": "x"}).to_json()
    with pytest.raises(ValueError, match="would be read back as a tagged"):
        Bad({"__float__": "inf"}).to_json()
    np.testing.assert_equal(strict_loads(Bad(np.arange(3)).to_json())["extra"],
                            [0, 1, 2])

    class Misnamed(ScaledVector):
        def as_dict(self):
            return dict(super().as_dict(), pattern="something.Else")

    # Written under the name as_dict() gives (as paragami did); reading it
    # back needs that name registered.
    text = Misnamed(2).to_json()
    assert json.loads(text)["pattern"] == "something.Else"
    with pytest.raises(ValueError, match="unknown pattern type 'something"):
        get_pattern_from_json(text)
    with pytest.raises(TypeError, match="pattern: expected a Pattern"):
        pattern_to_json({"pattern": "refold.NumericScalarPattern"})


# ----------------------------------------------------------------------
# paragami's format.

PARAGAMI_JSON = {
    "array": ('{"pattern": "paragami.numeric_array_patterns.'
              'NumericArrayPattern", "lb": -1, "ub": Infinity, "shape": [2, 3], '
              '"default_validate": true, "free_default": null}',
              NumericArrayPattern((2, 3), lb=-1.0)),
    "array_free": ('{"pattern": "paragami.numeric_array_patterns.'
                   'NumericArrayPattern", "lb": 0.5, "ub": Infinity, "shape":'
                   ' [2, 3], "default_validate": true, "free_default": true}',
                   NumericArrayPattern((2, 3), lb=0.5, free_default=True)),
    "vector": ('{"pattern": "paragami.numeric_array_patterns.'
               'NumericVectorPattern", "length": 4, "lb": -Infinity, '
               '"ub": 2.0, "default_validate": true, "free_default": null}',
               NumericVectorPattern(4, ub=2.0)),
    "scalar": ('{"pattern": "paragami.numeric_array_patterns.'
               'NumericScalarPattern", "lb": 1.0, "ub": Infinity, '
               '"default_validate": true, "free_default": null}',
               NumericScalarPattern(lb=1.0)),
    "psd": ('{"pattern": "paragami.psdmatrix_patterns.'
            'PSDSymmetricMatrixPattern", "size": 3, "diag_lb": 0.1, '
            '"default_validate": true}',
            PSDSymmetricMatrixPattern(3, diag_lb=0.1)),
    "simplex": ('{"pattern": "paragami.simplex_patterns.SimplexArrayPattern",'
                ' "simplex_size": 3, "array_shape": [2], '
                '"default_validate": true}', SimplexArrayPattern(3, (2,))),
    "array_of_array": (
        '{"pattern": "paragami.pattern_containers.PatternArray", "shape": '
        '[3, 2, 2], "array_shape": [3, 2], "base_pattern": "{\\"pattern\\": '
        '\\"paragami.numeric_array_patterns.NumericArrayPattern\\", \\"lb\\":'
        ' -Infinity, \\"ub\\": Infinity, \\"shape\\": [2], '
        '\\"default_validate\\": true, \\"free_default\\": null}"}',
        PatternArray((3, 2), NumericArrayPattern((2,)))),
}


def _paragami_dict_expected():
    pattern = PatternDict()
    pattern["a"] = NumericVectorPattern(2, lb=0.0)
    pattern["b"] = PatternArray((2,), PSDSymmetricMatrixPattern(2))
    return pattern


PARAGAMI_DICT_JSON = (
    '{"pattern": "paragami.pattern_containers.PatternDict", "keys": ["a", '
    '"b"], "contents": {"a": "{\\"pattern\\": \\"paragami.numeric_array_'
    'patterns.NumericVectorPattern\\", \\"length\\": 2, \\"lb\\": 0, '
    '\\"ub\\": Infinity, \\"default_validate\\": true, \\"free_default\\": '
    'null}", "b": "{\\"pattern\\": \\"paragami.pattern_containers.'
    'PatternArray\\", \\"shape\\": [2, 2, 2], \\"array_shape\\": [2], '
    '\\"base_pattern\\": \\"{\\\\\\"pattern\\\\\\": \\\\\\"paragami.'
    'psdmatrix_patterns.PSDSymmetricMatrixPattern\\\\\\", \\\\\\"size\\\\\\"'
    ': 2, \\\\\\"diag_lb\\\\\\": 0.0, \\\\\\"default_validate\\\\\\": true}'
    '\\"}"}}')


@pytest.mark.parametrize("name", sorted(PARAGAMI_JSON))
def test_hard_coded_paragami_json_loads(name):
    text, expected = PARAGAMI_JSON[name]
    rebuilt = get_pattern_from_json(text)
    assert type(rebuilt) is type(expected) and rebuilt == expected
    assert type(expected).from_json(text) == expected
    # and it is written back as standard refold JSON
    strict_loads(rebuilt.to_json())


def test_hard_coded_paragami_pattern_dict_loads():
    json.loads(PARAGAMI_DICT_JSON)  # the fixture itself is valid JSON
    rebuilt = get_pattern_from_json(PARAGAMI_DICT_JSON)
    assert rebuilt == _paragami_dict_expected()
    assert list(rebuilt) == ["a", "b"]
    assert PatternDict.from_json(PARAGAMI_DICT_JSON) == rebuilt


def _paragami_pairs(paragami):
    pd = paragami.PatternDict(free_default=True)
    pd["mean"] = paragami.NumericVectorPattern(3, ub=1.0)
    pd["cov"] = paragami.PatternArray(
        (2,), paragami.PSDSymmetricMatrixPattern(2, diag_lb=0.1))
    inner = paragami.PatternDict()
    inner["w"] = paragami.SimplexArrayPattern(3, (2,))
    pd["inner"] = inner
    return [
        paragami.NumericArrayPattern((2, 2), lb=-2.0, ub=3.0,
                                     free_default=False),
        paragami.NumericVectorPattern(3, lb=0.0),
        paragami.NumericScalarPattern(ub=-1.0),
        paragami.PSDSymmetricMatrixPattern(3, diag_lb=0.5),
        paragami.SimplexArrayPattern(4, (2, 3)),
        paragami.PatternArray((2, 2), paragami.NumericVectorPattern(2)),
        pd,
    ]


def test_json_written_by_installed_paragami_loads(paragami):
    for old in _paragami_pairs(paragami):
        rebuilt = get_pattern_from_json(old.to_json())
        assert type(rebuilt).__name__ == type(old).__name__
        # Same free parameterisation: free vectors interchange.
        value = old.random() if not isinstance(old, paragami.PatternDict) \
            else old.fold(np.random.default_rng(0).standard_normal(
                old.flat_length(True)), free=True)
        for free in (False, True):
            np.testing.assert_allclose(
                rebuilt.flatten(value, free=free),
                old.flatten(value, free=free), rtol=1e-10, atol=1e-12)


def test_file_written_by_installed_paragami_loads(paragami, tmp_path):
    pattern = _paragami_pairs(paragami)[-1]
    value = pattern.fold(np.random.default_rng(1).standard_normal(
        pattern.flat_length(True)), free=True)
    path = str(tmp_path / "old.npz")
    paragami.save_folded(path, value, pattern, note=np.arange(3))
    folded, rebuilt, data = load_folded(path)
    assert isinstance(rebuilt, PatternDict)
    assert_folded_allclose(folded, value, rtol=0, atol=0)
    assert list(data) == ["note"]
    np.testing.assert_array_equal(data["note"], np.arange(3))


# ----------------------------------------------------------------------
# save_folded / load_folded.

def test_save_and_load_round_trip_exactly(tmp_path):
    pattern = nested_dict_pattern()
    value = pattern.random(rng=4)
    before = pattern.flatten(value, free=False).copy()
    extras = {"weights": np.linspace(0, 1, 5), "n": 7,
              "labels": np.array(["a", "bc"]), "mask": np.array([True, False])}
    save_folded(str(tmp_path / "fit"), value, pattern, **extras)
    assert (tmp_path / "fit.npz").exists()
    np.testing.assert_array_equal(pattern.flatten(value, free=False), before)
    for target in (str(tmp_path / "fit.npz"), tmp_path / "fit.npz",
                   str(tmp_path / "fit")):
        folded, loaded, data = load_folded(target)
        assert loaded == pattern and loaded.free_default is True
        assert_folded_allclose(folded, value, rtol=0, atol=0)
        assert type(data) is dict and list(data) == list(extras)
        for key, item in extras.items():
            np.testing.assert_array_equal(data[key], item)


def test_file_objects_and_closing(monkeypatch):
    pattern = PSDSymmetricMatrixPattern(3)
    value = pattern.random(rng=2)
    buffer = io.BytesIO()
    save_folded(buffer, value, pattern, a=np.ones(2))
    buffer.seek(0)
    opened = []
    real_load = np.load

    def recording_load(*args, **kwargs):
        assert kwargs.get("allow_pickle") is False
        result = real_load(*args, **kwargs)
        opened.append(result)
        return result

    monkeypatch.setattr(np, "load", recording_load)
    folded, loaded, data = load_folded(buffer)
    np.testing.assert_array_equal(folded, value)
    assert len(opened) == 1 and opened[0].zip is None  # closed
    np.testing.assert_array_equal(data["a"], np.ones(2))


def test_load_folded_rejects_files_it_did_not_write(tmp_path):
    pattern = NumericVectorPattern(2)
    flat = np.ones(2)
    no_pattern = str(tmp_path / "no_pattern.npz")
    np.savez(no_pattern, flat_val=flat)
    with pytest.raises(ValueError, match="file: .*'pattern_json'.*flat_val"):
        load_folded(no_pattern)
    no_flat = str(tmp_path / "no_flat.npz")
    np.savez(no_flat, pattern_json=pattern.to_json())
    with pytest.raises(ValueError, match="file: .*'flat_val'"):
        load_folded(no_flat)
    pickled = str(tmp_path / "pickled.npz")
    np.savez(pickled, flat_val=flat, pattern_json=pattern.to_json(),
             evil=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="file: the entry 'evil'.*unpickling"):
        load_folded(pickled)
    single = str(tmp_path / "single.npy")
    np.save(single, flat)
    with pytest.raises(ValueError, match="file: expected an .npz archive"):
        load_folded(single)
    bad_json = str(tmp_path / "bad_json.npz")
    np.savez(bad_json, flat_val=flat, pattern_json=np.array(["a", "b"]))
    with pytest.raises(ValueError, match="'pattern_json' should be a single "
                       "string"):
        load_folded(bad_json)
    unknown = str(tmp_path / "unknown.npz")
    np.savez(unknown, flat_val=flat, pattern_json=ScaledVector(2).to_json())
    with pytest.raises(ValueError, match="unknown pattern type"):
        load_folded(unknown)
    out_of_bounds = str(tmp_path / "oob.npz")
    np.savez(out_of_bounds, flat_val=np.array([-1.0]),
             pattern_json=NumericScalarPattern(lb=0.0).to_json())
    with pytest.raises(ValueError, match="below the lower bound"):
        load_folded(out_of_bounds)


def test_save_folded_rejects_bad_input(tmp_path):
    pattern = NumericVectorPattern(2, lb=0.0)
    path = str(tmp_path / "x.npz")
    with pytest.raises(ValueError, match="flat_val: this name is reserved"):
        save_folded(path, np.ones(2), pattern, flat_val=np.ones(2))
    with pytest.raises(ValueError,
                       match="pattern_json: this name is reserved"):
        save_folded(path, np.ones(2), pattern, pattern_json="x")
    with pytest.raises(TypeError, match="extra: cannot store dict without "
                       "pickling"):
        save_folded(path, np.ones(2), pattern, extra={"a": 1})
    with pytest.raises(TypeError, match="pattern: expected a Pattern"):
        save_folded(path, np.ones(2), "pattern")
    with pytest.raises(ValueError, match=r"params\[1\].*below the lower"):
        save_folded(path, np.array([1.0, -1.0]), pattern)
    assert not (tmp_path / "x.npz").exists()


def test_registered_custom_pattern_saves_and_loads(tmp_path):
    register_pattern_json(ScaledVector)
    pattern = PatternDict()
    pattern["custom"] = ScaledVector(3, scale=2.0, tags=("t",))
    pattern["sigma"] = NumericScalarPattern(lb=0.0)
    value = {"custom": np.array([1.0, -2.0, 3.0]), "sigma": np.array([0.5])}
    save_folded(str(tmp_path / "c.npz"), value, pattern)
    folded, loaded, data = load_folded(str(tmp_path / "c.npz"))
    assert loaded == pattern and data == {}
    assert_folded_allclose(folded, value, rtol=0, atol=0)
