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
* **defect** -- anything else: a bug to fix in refold.

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
    (r"does not match", "error messages name the path (Patterns: values and "
     "validation); the exception type matched"),
    (r"DerivativeTerm|ForwardModeDerivativeArray|ReverseModeDerivativeArray"
     r"|ReorderedReverseModeDerivativeArray|SystemSolver",
     "not provided (Module paths)"),
    (r"AssertionError: .*Warning not triggered|assertWarns|"
     r"experimental", "no experimental warnings; CG raises (Sensitivity)"),
    (r"NotImplementedError not raised",
     "implemented where paragami raised NotImplementedError (Patterns: "
     "Jacobians, indices and log-determinants)"),
    (r"ValueError not raised.*(nan|inf|NaN)",
     "NaN and inf are rejected (Patterns: values and validation)"),
    (r"sksparse|scikit-sparse", "no scikit-sparse needed (Module paths)"),
]
PRIVATE = re.compile(
    r"(has no attribute|cannot import name) '_\w+'|"
    r"\b(paragami|vittles)\.\w+\._\w+")

CONFTEST = '''\
"""Written by refold's benchmarks/anchor_suites.py: run the anchors' tests
against refold.compat."""
import importlib
import sys

import numpy
import refold.compat

numpy.product = getattr(numpy, "product", numpy.prod)
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
    text = "{} :: {}".format(test_id, message)
    if PRIVATE.search(text):
        return "private", "private helper of the anchor (not public API)"
    for pattern, section in DELIBERATE:
        if re.search(pattern, text):
            return "deliberate", "{} -- {}".format(PORTING, section)
    return "defect", "not documented: a bug to fix"


def run_suite(name: str, tests: str, work: str) -> Dict[str, list]:
    """Run one suite against refold.compat; results by classification."""
    target = os.path.join(work, name + "-tests")
    shutil.copytree(tests, target, dirs_exist_ok=True)
    with open(os.path.join(target, "conftest.py"), "w") as fh:
        fh.write(CONFTEST)
    report = os.path.join(work, name + ".xml")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT, target, os.environ.get("PYTHONPATH", "")]),
        OPENBLAS_NUM_THREADS=os.environ.get("OPENBLAS_NUM_THREADS", "1"))
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p",
                    "no:cacheprovider", "--rootdir", target, "--junitxml",
                    report, target], cwd=target, env=env, check=False)
    results: Dict[str, list] = {"passed": [], "private": [],
                                "deliberate": [], "defect": []}
    for case in ET.parse(report).getroot().iter("testcase"):
        test_id = "{}::{}".format(case.get("classname"), case.get("name"))
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if case.find("skipped") is not None:
            continue
        if problem is None:
            results["passed"].append(test_id)
            continue
        message = (problem.get("message") or "") + "\n" + (problem.text or "")
        kind, why = _classify(test_id, message)
        results[kind].append((test_id, why, message.strip().splitlines()[0]
                              if message.strip() else ""))
    return results


def _print(all_results: Dict[str, Dict[str, list]]) -> int:
    print()
    header = ("suite", "passed", "deliberate", "private (set aside)",
              "defects")
    rows = [header] + [(name, str(len(r["passed"])), str(len(r["deliberate"])),
                        str(len(r["private"])), str(len(r["defect"])))
                       for name, r in all_results.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    defects = 0
    for name, results in all_results.items():
        for kind in ("defect", "deliberate", "private"):
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
            all_results[name] = run_suite(name, tests, work)
    return _print(all_results)


if __name__ == "__main__":
    sys.exit(main())
