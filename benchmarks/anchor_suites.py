"""Run paragami's and vittles' own test suites against refold.compat.

The anchors' test files are run unchanged, with ``paragami`` and ``vittles``
(and their submodules) aliased to :mod:`refold.compat.paragami` and
:mod:`refold.compat.vittles`, and every failure is classified:

* **private** -- the test uses a private helper of the anchor (a name
  starting with ``_``, e.g. ``vittles.sensitivity_lib._append_jvp``); these
  are not part of the public API refold keeps, and are set aside;
* **deliberate** -- a difference the porting guide documents (the table
  ``DELIBERATE`` below maps a test or a failure message to the section of
  ``docs/porting.rst`` that explains it);
* **anchor** -- the test fails against the installed anchor too (run
  first, as a baseline; ``--no-baseline`` skips it), so it says nothing
  about refold;
* **defect** -- anything else: a bug to fix in refold.

A test that fails only because ``assertRaisesRegex`` met refold's wording
after the expected exception type is rerun with ``assertRaisesRegex``
relaxed to the type; it counts as deliberate only if it then passes, and
otherwise is classified by what fails there. The harness's conftest also
gives ``paragami.optimization_lib`` a test-only ``_get_matrix_from_operator``
(a private name test modules import at module level) so those modules'
public tests run.

Where the tests come from. The source distributions on PyPI
(``paragami-0.42.tar.gz``, ``vittles-0.173.tar.gz``) ship the packages and
their docs but **no tests**, so the suites are taken from the anchors'
repositories at their release commits: either checkouts you pass
(``--source paragami=DIR``), or shallow clones of
``https://github.com/rgiordan/<name>`` at ``--ref name=REF`` (the defaults
are the release tags named in ``RELEASE_REFS``; pass a commit if a tag is
missing). The test files are copied to a temporary directory and run there:
nothing of the anchors is copied into refold.

Usage::

    python benchmarks/anchor_suites.py                       # clone and run
    python benchmarks/anchor_suites.py --source paragami=../paragami \\
        --source vittles=../vittles --no-install
    python benchmarks/anchor_suites.py --list-deliberate

By default the script first runs ``pip install -e ".[bench]"`` (the anchors
are needed for tests that compare against them). It exits with status 1 if a
defect is left.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PORTING = "docs/porting.rst"

ANCHORS = {"paragami": "0.42", "vittles": "0.173"}
RELEASE_REFS = {"paragami": "v0.42", "vittles": "v0.173"}
REPOSITORIES = {name: "https://github.com/rgiordan/{}".format(name)
                for name in ANCHORS}

#: (pattern on "test id :: failure message", section of docs/porting.rst).
#: A failure matching a pattern is a documented, deliberate difference.
DELIBERATE: List[Tuple[str, str]] = [
    # assertRaisesRegex fails this way only when the expected exception
    # class WAS raised: the type matched, paragami's wording did not. Such a
    # test counts as deliberate only if it also passes with messages relaxed
    # (see run_suite), so nothing after the message check is hidden.
    (r'AssertionError: "[^"\n]*" does not match "',
     "error messages are refold's own wording, naming the path (Patterns: "
     "values and validation); the exception type matched"),
    (r"test_slogdet_3d .*ValueError not raised",
     "forward-mode slogdet covers stacks of matrices (Module paths, "
     "'Not provided')"),
    (r"test_register_json_pattern .*ValueError not raised",
     "registering the same class twice is accepted (Patterns: JSON, "
     "equality and files)"),
    (r"test_pattern_array .*NotImplementedError not raised",
     "PatternArray accepts a PatternDict base (Patterns: containers)"),
    (r"DerivativeTerm|ForwardModeDerivativeArray|ReverseModeDerivativeArray"
     r"|ReorderedReverseModeDerivativeArray|SystemSolver",
     "not provided (Module paths)"),
    (r"No module named 'paragami\.sensitivity_lib'",
     "paragami 0.42's own sensitivity_lib is not provided (Module paths)"),
]
MESSAGE_ONLY = re.compile(r'^AssertionError: "[^"\n]*" does not match "')
PRIVATE = re.compile(
    r"(has no attribute|cannot import name) '_\w+'|"
    r"\b(paragami|vittles)\.\w+\._\w+")

ANCHOR_CONFTEST = '''\
"""Written by refold's benchmarks/anchor_suites.py: run the anchors' tests
against the installed anchors themselves (the baseline)."""
import numpy
import autograd.numpy

numpy.product = getattr(numpy, "product", numpy.prod)
autograd.numpy.product = getattr(autograd.numpy, "product", numpy.prod)
'''

CONFTEST = '''\
"""Written by refold's benchmarks/anchor_suites.py: run the anchors' tests
against refold.compat."""
import importlib
import sys

import numpy
import refold.compat

numpy.product = getattr(numpy, "product", numpy.prod)
RELAX_MESSAGES = {relax}
if RELAX_MESSAGES:
    import unittest

    def _type_only(self, expected, regex, *args, **kwargs):
        return self.assertRaises(expected, *args, **kwargs)

    unittest.TestCase.assertRaisesRegex = _type_only


def _get_matrix_from_operator(mult_fun, dim):
    # Test-only shim for a private name test modules import at module
    # level, so their public tests can run; not part of refold.
    return numpy.stack([mult_fun(col) for col in numpy.eye(dim)], axis=1)


import refold.compat.paragami.optimization_lib as _optimization_lib
if not hasattr(_optimization_lib, "_get_matrix_from_operator"):
    _optimization_lib._get_matrix_from_operator = _get_matrix_from_operator
for name in ("paragami", "vittles"):
    package = importlib.import_module("refold.compat." + name)
    sys.modules[name] = package
    for sub in list(vars(package)):
        module = getattr(package, sub)
        if getattr(module, "__name__", "").startswith("refold.compat." + name
                                                      + "."):
            sys.modules[name + "." + sub] = module
'''


def _run(cmd: List[str], cwd: Optional[str] = None, check: bool = True):
    print("$", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=cwd, check=check)


def _fetch(name: str, source: Optional[str], ref: str, work: str) -> str:
    """The folder of the anchor's test files."""
    if source is None:
        source = os.path.join(work, name + "-src")
        _run(["git", "clone", "--quiet", "--depth", "1", "--branch", ref,
              REPOSITORIES[name], source])
    tests = os.path.join(source, name, "tests")
    if not os.path.isdir(tests):
        raise SystemExit("{}: no test folder {} (the PyPI sdists have no "
                         "tests; pass a checkout of the repository)".format(
                             name, tests))
    return tests


def _classify(test_id: str, message: str) -> Tuple[str, str]:
    text = "{} {}".format(test_id, message.strip())
    if PRIVATE.search(text):
        return "private", "private helper of the anchor (not public API)"
    for pattern, section in DELIBERATE:
        if re.search(pattern, text):
            return "deliberate", "{} -- {}".format(PORTING, section)
    return "defect", "not documented: a bug to fix"


def _pytest(name: str, tests: str, work: str, against: str
            ) -> List[Tuple[str, Optional[str]]]:
    """Run one suite; (test id, failure message or None) per test run."""
    target = os.path.join(work, "{}-tests-{}".format(name, against))
    shutil.copytree(tests, target, dirs_exist_ok=True)
    with open(os.path.join(target, "conftest.py"), "w") as fh:
        fh.write(ANCHOR_CONFTEST if against == "anchor" else
                 CONFTEST.replace("{relax}", str(against == "relaxed")))
    report = os.path.join(work, "{}-{}.xml".format(name, against))
    path = [target] if against == "anchor" else [ROOT, target]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        path + [os.environ.get("PYTHONPATH", "")]),
        OPENBLAS_NUM_THREADS=os.environ.get("OPENBLAS_NUM_THREADS", "1"))
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p",
                    "no:cacheprovider", "--continue-on-collection-errors",
                    "--rootdir", target, "--junitxml", report, target],
                   cwd=target, env=env, check=False)
    cases = []
    for case in ET.parse(report).getroot().iter("testcase"):
        test_id = "{}::{}".format(case.get("classname"), case.get("name"))
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if case.find("skipped") is not None:
            continue
        if problem is None:
            cases.append((test_id, None))
        else:
            cases.append((test_id, (problem.get("message") or "") + "\n"
                          + (problem.text or "")))
    return cases


def run_suite(name: str, tests: str, work: str,
              baseline: bool = True) -> Dict[str, list]:
    """Run one suite against refold.compat; results by classification.

    With ``baseline``, the suite is first run against the installed anchor
    itself; a test that fails there too is counted as ``anchor`` (a test
    the release does not pass on this machine's numpy/scipy), not as a
    defect of refold.
    """
    anchor_failures = set()
    if baseline:
        anchor_failures = {test_id for test_id, message
                           in _pytest(name, tests, work, "anchor")
                           if message is not None}
    results: Dict[str, list] = {"passed": [], "private": [],
                                "deliberate": [], "anchor": [],
                                "defect": []}
    relaxed = None
    for test_id, message in _pytest(name, tests, work, "refold"):
        if message is None:
            results["passed"].append(test_id)
            continue
        if test_id in anchor_failures:
            kind, why = "anchor", "fails on the installed anchor too"
            results[kind].append((test_id, why, message.strip().splitlines()[0]
                                  if message.strip() else ""))
            continue
        if MESSAGE_ONLY.search(message):
            # Look past the wording: rerun with assertRaisesRegex checking
            # the exception type only, and classify what fails there.
            if relaxed is None:
                relaxed = dict(_pytest(name, tests, work, "relaxed"))
            if relaxed.get(test_id, message) is not None:
                message = relaxed.get(test_id, message)
        kind, why = _classify(test_id, message)
        results[kind].append((test_id, why, message.strip().splitlines()[0]
                              if message.strip() else ""))
    return results


def _print(all_results: Dict[str, Dict[str, list]]) -> int:
    print()
    header = ("suite", "passed", "deliberate", "private (set aside)",
              "fail on the anchor too", "defects")
    rows = [header] + [(name, str(len(r["passed"])), str(len(r["deliberate"])),
                        str(len(r["private"])), str(len(r["anchor"])),
                        str(len(r["defect"])))
                       for name, r in all_results.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    defects = 0
    for name, results in all_results.items():
        for kind in ("defect", "deliberate", "private", "anchor"):
            for test_id, why, first in results[kind]:
                print("[{}] {} {}: {}\n    {}".format(name, kind.upper(),
                                                      test_id, why, first))
        defects += len(results["defect"])
    return 1 if defects else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", action="append", default=[],
                        metavar="NAME=DIR",
                        help="a checkout of the anchor's repository")
    parser.add_argument("--ref", action="append", default=[],
                        metavar="NAME=REF", help="tag or commit to clone")
    parser.add_argument("--only", choices=sorted(ANCHORS))
    parser.add_argument("--no-install", action="store_true",
                        help='skip pip install -e ".[bench]"')
    parser.add_argument("--list-deliberate", action="store_true")
    parser.add_argument("--no-baseline", action="store_true",
                        help="do not first run the suites against the "
                        "installed anchors")
    args = parser.parse_args(argv)
    if args.list_deliberate:
        for pattern, section in DELIBERATE:
            print("{:<60} {}".format(pattern[:60], section))
        return 0
    sources = dict(item.split("=", 1) for item in args.source)
    refs = dict(RELEASE_REFS, **dict(item.split("=", 1) for item in args.ref))
    if not args.no_install:
        _run([sys.executable, "-m", "pip", "install", "-q", "-e",
              ROOT + "[bench]"])
    all_results = {}
    with tempfile.TemporaryDirectory(prefix="anchor_suites_") as work:
        for name in ANCHORS:
            if args.only and name != args.only:
                continue
            tests = _fetch(name, sources.get(name), refs[name], work)
            all_results[name] = run_suite(name, tests, work,
                                          baseline=not args.no_baseline)
    return _print(all_results)


if __name__ == "__main__":
    sys.exit(main())
