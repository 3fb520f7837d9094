"""The documentation cannot rot: every code example in docs/ runs here.

* Every ``>>>`` example of every ``.rst`` page runs through :mod:`doctest`
  (``ELLIPSIS | NORMALIZE_WHITESPACE``), page by page, and must pass.
* No page has a code block that escapes that: a ``code-block`` must be a
  shell (``console``) or ``text`` block, a bare ``::`` literal block or a
  ``testcode`` directive fails, and every ``literalinclude`` shows a tutorial
  script (run below), its recorded output, or the benchmark tables.
* Every tutorial script runs with ``--fast`` (writing its figure to a
  temporary directory when matplotlib is importable), and its results are
  checked against the independent truth the tutorial compares with.
* Every file an ``image``/``literalinclude`` names exists, so the Sphinx
  build (``python -m sphinx -W -b html docs docs/_build/html``) finds them.
* The API reference documents every public name (``refold.__all__``,
  ``refold.sensitivity``, ``refold.testing`` and every public module of
  ``refold.patterns``, ``refold.sensitivity`` and ``refold.models``).
* ``benchmarks/run_all.py`` finds the benchmark scripts (they are not run).
"""
import doctest
import importlib
import inspect
import os
import pkgutil
import re
import runpy
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
TUTORIALS = os.path.join(DOCS, "tutorials")


def _rst_pages():
    pages = []
    for folder, dirs, files in os.walk(DOCS):
        dirs[:] = [d for d in dirs if not d.startswith("_")]
        pages += [os.path.join(folder, f) for f in files if f.endswith(".rst")]
    return sorted(pages)


RST_PAGES = _rst_pages()
PAGES_WITH_EXAMPLES = [p for p in RST_PAGES if ">>>" in open(p).read()]
TUTORIAL_SCRIPTS = sorted(
    os.path.join(TUTORIALS, f) for f in os.listdir(TUTORIALS)
    if f.endswith(".py") and not f.startswith("_"))


def _relative(path):
    return os.path.relpath(path, ROOT)


# ----------------------------------------------------------------- doctests

@pytest.mark.parametrize("page", PAGES_WITH_EXAMPLES, ids=_relative)
def test_rst_examples_run(page):
    name = "refold_docs_" + re.sub(r"\W", "_", _relative(page)[5:-4])
    parser = doctest.DocTestParser()
    test = parser.get_doctest(open(page).read(), {"__name__": name}, name,
                              page, 0)
    assert test.examples, "no examples found in {}".format(page)
    output = []
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    try:
        runner.run(test, out=output.append)
    finally:
        test.globs.clear()
    result = runner.summarize(verbose=False)
    assert result.failed == 0, "".join(output)


def test_some_pages_have_examples():
    names = {os.path.basename(p) for p in PAGES_WITH_EXAMPLES}
    assert {"quickstart.rst", "patterns.rst", "sensitivity.rst",
            "models.rst", "porting.rst"} <= names


# ------------------------------------------- no code escapes the doctests

ALLOWED_LANGUAGES = {"console", "text", "none"}
DIRECTIVE = re.compile(r"^\s*\.\.\s+([\w:-]+)::\s*(.*)$")


def _allowed_include(page, target):
    path = os.path.normpath(os.path.join(os.path.dirname(page), target))
    return (path in TUTORIAL_SCRIPTS
            or path.startswith(os.path.join(TUTORIALS, "figures") + os.sep)
            and path.endswith(".txt")
            or path == os.path.join(DOCS, "benchmark_tables.txt"))


@pytest.mark.parametrize("page", RST_PAGES, ids=_relative)
def test_every_code_block_is_tested(page):
    problems = []
    for number, line in enumerate(open(page), 1):
        match = DIRECTIVE.match(line)
        where = "{}:{}".format(_relative(page), number)
        if match:
            directive, argument = match.groups()
            if directive in ("code-block", "code", "sourcecode"):
                if argument.strip() not in ALLOWED_LANGUAGES:
                    problems.append("{}: a '{}' code block is not run; use "
                                    "a >>> example".format(where, argument))
            elif directive in ("testcode", "testoutput", "testsetup"):
                problems.append("{}: '{}' is not run by these tests; use "
                                ">>> examples".format(where, directive))
            elif directive == "literalinclude":
                if not _allowed_include(page, argument.strip()):
                    problems.append("{}: literalinclude of {} is not a "
                                    "tested file".format(where, argument))
        elif line.rstrip().endswith("::") and not line.lstrip().startswith(
                ".."):
            problems.append("{}: a bare '::' literal block is not run; use "
                            "a >>> example or a console/text code-block"
                            .format(where))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", RST_PAGES, ids=_relative)
def test_included_files_exist(page):
    missing = []
    for line in open(page):
        match = DIRECTIVE.match(line)
        if match and match.group(1) in ("image", "figure", "literalinclude",
                                        "include"):
            target = os.path.join(os.path.dirname(page),
                                  match.group(2).strip())
            if not os.path.exists(target):
                missing.append(_relative(target))
    assert not missing, "missing files: {}".format(missing)


def test_every_tutorial_is_a_page():
    for script in TUTORIAL_SCRIPTS:
        page = script[:-3] + ".rst"
        assert os.path.exists(page), page
        text = open(page).read()
        name = os.path.basename(script)[:-3]
        assert ".. literalinclude:: {}.py".format(name) in text
        assert ".. image:: figures/{}.png".format(name) in text
        assert name in open(os.path.join(TUTORIALS, "index.rst")).read()


# ---------------------------------------------------------------- tutorials

def _run_tutorial(name, tmp_path):
    """Run ``docs/tutorials/<name>.py --fast``; return what main returns."""
    # As `python docs/tutorials/<name>.py` would, put the script's folder on
    # sys.path so it finds the shared command line in _tutorial.py.
    sys.path.insert(0, TUTORIALS)
    try:
        namespace = runpy.run_path(os.path.join(TUTORIALS, name + ".py"),
                                   run_name="tutorial_" + name)
    finally:
        sys.path.remove(TUTORIALS)
    try:
        import matplotlib  # noqa: F401
        have_matplotlib = True
    except ImportError:
        have_matplotlib = False
    result = namespace["main"](["--fast", "--figures", str(tmp_path)])
    assert (tmp_path / (name + ".txt")).exists()
    if have_matplotlib:
        assert (tmp_path / (name + ".png")).stat().st_size > 1000
    return result


def test_every_tutorial_is_tested():
    tested = {"neyman_scott", "em_standard_errors", "lrvb_glmm",
              "taylor_prior_sensitivity", "drop_data_microcredit"}
    present = {os.path.basename(s)[:-3] for s in TUTORIAL_SCRIPTS}
    assert present == tested, "add a test for {}".format(present - tested)


def test_tutorial_neyman_scott(tmp_path):
    res = _run_tutorial("neyman_scott", tmp_path)
    theta = res["theta"]
    # The joint MLE is centred on theta / 2, the marginal MLE on theta.
    assert abs(np.mean(res["estimates"]["joint"]) - theta / 2) < 0.1
    assert abs(np.mean(res["estimates"]["marginal"]) - theta) < 0.2
    np.testing.assert_allclose(res["estimates"]["em"],
                               res["estimates"]["marginal"], rtol=1e-6)


def test_tutorial_em_standard_errors(tmp_path):
    res = _run_tutorial("em_standard_errors", tmp_path)
    for label in ("overlapping", "well separated"):
        ses = res[label]["ses"]
        # The EM fix equals the finite-difference marginal Hessian's SEs.
        np.testing.assert_allclose(ses["EM fix"], ses["finite diff."],
                                   rtol=1e-4)
        np.testing.assert_allclose(ses["Louis"], ses["finite diff."],
                                   rtol=1e-4)
        assert np.all(ses["naive"] <= ses["EM fix"] * (1 + 1e-8))
    overlapping = res["overlapping"]["ses"]
    assert np.all(overlapping["naive"] < 0.8 * overlapping["EM fix"])
    assert res["well separated"]["em_cov"].info["num_dropped"] > 0
    worked = res["gaussian_mixture"]
    np.testing.assert_allclose(worked["corrected"], worked["finite diff."],
                               rtol=1e-4)
    assert np.all(worked["naive"] <= worked["corrected"] * (1 + 1e-8))


def test_tutorial_lrvb_glmm(tmp_path):
    res = _run_tutorial("lrvb_glmm", tmp_path)
    assert res["ess"] > 1000
    is_beta = np.array([name.startswith("beta") for name in res["names"]])
    lr_ratio = res["lr"] / res["reference"]
    mfvb_ratio = res["mfvb"] / res["reference"]
    assert np.all(np.abs(lr_ratio[is_beta] - 1) < 0.08)
    assert np.all(mfvb_ratio[is_beta] < 0.9)
    assert np.median(np.abs(lr_ratio - 1)) < np.median(np.abs(mfvb_ratio - 1))


def test_tutorial_taylor_prior_sensitivity(tmp_path):
    res = _run_tutorial("taylor_prior_sensitivity", tmp_path)
    errors = np.max(np.abs(res["predictions"] - res["refits"][None]), axis=2)
    near = (np.abs(res["grid"]) <= 2.0) & (res["grid"] != 0.0)
    assert near.any()
    # Near the expansion point every order improves on the one before.
    assert np.all(np.diff(errors[:, near], axis=0) < 0)
    assert np.all(errors[:, res["grid"] == 0.0] < 1e-8)


def test_tutorial_drop_data_microcredit(tmp_path):
    res = _run_tutorial("drop_data_microcredit", tmp_path)
    x, y, theta = res["x"], res["y"], res["theta"]
    np.testing.assert_allclose(theta, np.linalg.lstsq(x, y, rcond=None)[0],
                               rtol=1e-10)
    greedy, general = res["greedy"], res["general"]
    # Every reported set flips the sign by a fresh least-squares fit.
    for fit in (res["fresh_greedy"], res["fresh_amip"]):
        assert np.sign(fit[1]) != np.sign(theta[1])
    assert greedy.found and general.found
    assert greedy.refit_qoi == pytest.approx(res["fresh_greedy"][1],
                                             rel=1e-8)
    # Greedy needs no more than the first-order ranking checked by re-fits,
    # which needs no more than the additive first-order prediction.
    assert greedy.n_dropped <= res["first_order_needed"]
    assert general.n_dropped == greedy.n_dropped
    sig = res["significance"]
    keep = np.setdiff1d(np.arange(len(y)), sig.indices)
    w = np.zeros(len(y))
    w[keep] = 1.0
    se = res["se_fun"](res["fresh_significance"], w)
    assert abs(res["fresh_significance"][1]) < 1.959964 * se
    assert sig.refit_se == pytest.approx(se, rel=1e-8)


# ------------------------------------------------------------ API reference

def _public_modules(package_name):
    package = importlib.import_module(package_name)
    return ["{}.{}".format(package_name, info.name)
            for info in pkgutil.iter_modules(package.__path__)
            if not info.name.startswith("_")]


def _documented_modules():
    modules = set()
    for page in os.listdir(os.path.join(DOCS, "api")):
        for line in open(os.path.join(DOCS, "api", page)):
            match = DIRECTIVE.match(line)
            if match and match.group(1) == "automodule":
                modules.add(match.group(2).strip())
    return modules


def test_api_reference_covers_every_public_module():
    documented = _documented_modules()
    expected = {"refold.testing"}
    for package in ("refold.patterns", "refold.sensitivity", "refold.models"):
        expected.update(_public_modules(package))
    missing = sorted(expected - documented)
    assert not missing, "add to docs/api: {}".format(missing)


def test_api_reference_covers_every_public_name():
    documented = _documented_modules()
    exported = []
    for module_name in ["refold", "refold.sensitivity", "refold.testing"] + \
            _public_modules("refold.models"):
        module = importlib.import_module(module_name)
        exported += [(module_name, name)
                     for name in getattr(module, "__all__", [])]
    assert exported
    missing = []
    for module_name, name in exported:
        obj = getattr(importlib.import_module(module_name), name)
        home = getattr(obj, "__module__", None) if (
            inspect.isclass(obj) or inspect.isfunction(obj)) else module_name
        home_module = sys.modules.get(home)
        listed = getattr(home_module, "__all__", None)
        if home not in documented or (listed is not None
                                      and name not in listed):
            missing.append("{}.{} (defined in {})".format(
                module_name, name, home))
    assert not missing, "undocumented: {}".format(missing)


# --------------------------------------------------------------- benchmarks

def test_benchmark_runner_finds_the_scripts():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        run_all = importlib.import_module("run_all")
    finally:
        sys.path.pop(0)
    names = [name for name, _ in run_all.discover()]
    on_disk = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT,
                                                             "benchmarks"))
                     if f.endswith("_bench.py"))
    assert sorted(names) == on_disk and names
    lines = run_all.machine_description({"OPENBLAS_NUM_THREADS": "1"})
    assert any("numpy {}".format(np.__version__) in line for line in lines)
    assert any("OPENBLAS_NUM_THREADS=1" in line for line in lines)
