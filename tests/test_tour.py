"""The tour (``python -m refold``) runs and prints its tables, and the
numbers it prints say what the tour claims."""
import re
import subprocess
import sys

import pytest

from refold.__main__ import SECTIONS, main


@pytest.fixture(scope="module")
def tour_output():
    import io
    import contextlib
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main([]) == 0
    return buffer.getvalue()


def _number_after(text, label):
    return float(re.search(re.escape(label) + r"\s*([-+0-9.e]+)",
                           text).group(1))


def test_every_section_prints(tour_output):
    for header in ["== Patterns", "== Neyman-Scott", "== EM standard errors",
                   "== Linear response", "== Prior sensitivity"]:
        assert header in tour_output
    assert len(SECTIONS) == 5
    assert "tour finished" in tour_output


def test_patterns_section(tour_output):
    assert _number_after(tour_output, "max abs error") < 1e-12
    assert "a random free vector folds to a valid parameter: True" in \
        tour_output


def test_neyman_scott_section(tour_output):
    row = [line for line in tour_output.splitlines()
           if line.strip().startswith("10000")][0].split()
    joint, marginal, se, em, em_se, naive = map(float, row[1:])
    assert abs(joint - 1.0) < 0.05 and abs(marginal - 2.0) < 3 * se
    assert abs(em - marginal) < 1e-6 and abs(em_se - se) < 1e-6
    assert naive < em_se


def test_em_and_linear_response_sections(tour_output):
    assert _number_after(tour_output, "max relative difference") < 1e-6
    assert _number_after(tour_output, "max |LR cov - cov| =") < 1e-10


def test_taylor_section(tour_output):
    row = [line for line in tour_output.splitlines()
           if line.strip().startswith("0.1 ")][0].split()
    errors = list(map(float, row[2:]))
    assert errors[-1] < errors[0] / 100


def test_tour_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "refold", "--only",
                             "patterns"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "round trip" in result.stdout


def test_tour_plots_written(tmp_path):
    pytest.importorskip("matplotlib")
    assert main(["--only", "taylor", "--plots", str(tmp_path)]) == 0
    png = tmp_path / "taylor.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
