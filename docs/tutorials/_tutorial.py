"""The command line every tutorial script shares.

``python docs/tutorials/<name>.py [--fast] [--figures DIR]``: ``--fast`` runs
a small version (the test suite uses it); ``--figures DIR`` writes the
printed output to ``DIR/<name>.txt`` and, when matplotlib is installed, the
figure to ``DIR/<name>.png``.
"""
import argparse
import io
import os


class TutorialRun:
    """Parsed options, a recorder of the printed output, and the write-out.

    Parameters
    ----------
    name : str
        The tutorial's name (the stem of its output files).
    doc : str
        The script's docstring; its first line describes the command.
    argv : list of str or None
        The command-line arguments (``None``: ``sys.argv[1:]``).
    """

    def __init__(self, name, doc, argv=None):
        parser = argparse.ArgumentParser(description=doc.splitlines()[0])
        parser.add_argument("--fast", action="store_true",
                            help="a small version (used by the test suite)")
        parser.add_argument("--figures", metavar="DIR", default=None,
                            help="write the figure (needs matplotlib) and "
                                 "the printed output to DIR")
        args = parser.parse_args(argv)
        self.name = name
        self.fast = args.fast
        self.figures = args.figures
        self._buffer = io.StringIO()

    def out(self, line=""):
        """Print a line and keep it for the output file."""
        print(line)
        self._buffer.write(line + "\n")

    def finish(self, draw):
        """With ``--figures``: write the output, and the figure by calling
        ``draw(png_path)`` when matplotlib is installed."""
        if not self.figures:
            return
        os.makedirs(self.figures, exist_ok=True)
        stem = os.path.join(self.figures, self.name)
        with open(stem + ".txt", "w") as fh:
            fh.write(self._buffer.getvalue())
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("matplotlib is not installed: no figure written")
        else:
            draw(stem + ".png")
