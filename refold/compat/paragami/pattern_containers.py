"""``paragami.pattern_containers``: :mod:`refold.patterns.containers` and
:mod:`refold.patterns.json_io`."""
from refold.patterns.containers import PatternArray, PatternDict  # noqa
from refold.patterns.json_io import (  # noqa: F401
    get_pattern_from_json, load_folded, register_pattern_json, save_folded)

__all__ = ["PatternDict", "PatternArray", "register_pattern_json",
           "get_pattern_from_json", "save_folded", "load_folded"]
