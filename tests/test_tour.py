"""The tour (``python -m refold``) runs and prints its tables."""
import subprocess
import sys

from refold.__main__ import main


def test_tour_prints_every_section(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "== Patterns" in out
    assert "free coordinate" in out
    assert "a random free vector folds to a valid parameter: True" in out
    error = float(out.split("max abs error ")[1].split()[0])
    assert error < 1e-12
    assert "tour finished" in out


def test_tour_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "refold", "--only",
                             "patterns"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "round trip" in result.stdout
