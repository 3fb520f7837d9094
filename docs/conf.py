"""Sphinx configuration for refold's documentation.

Build (warnings are errors)::

    python -m sphinx -W -b html docs docs/_build/html

Only Sphinx's bundled extensions are used, so ``pip install -e ".[docs]"``
(which installs Sphinx) is all a build needs. The tutorial figures are
committed under ``docs/tutorials/figures``; regenerate them with
``python docs/tutorials/<name>.py --figures docs/tutorials/figures``
(needs matplotlib, the ``plots`` extra).
"""
import os
import sys

# Build against the working tree even when refold is not installed.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__),
                                                "..")))

import refold  # noqa: E402

project = "refold"
author = "the refold developers"
copyright = "refold developers"
version = refold.__version__
release = refold.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path = []

# numpydoc-style docstrings through napoleon.
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_ivar = True          # "Attributes" as fields: no duplicate targets
napoleon_use_rtype = False
napoleon_preprocess_types = False

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
}
autoclass_content = "class"

# Plain ``>>>`` blocks in the guides are tested by tests/test_docs.py (and by
# ``sphinx -b doctest``); docstring examples by the library's own tests.
doctest_test_doctest_blocks = "default"

html_theme = "alabaster"
html_static_path = []
html_title = "refold {}".format(release)
html_theme_options = {
    "description": "structured parameters, sensitivity of optima, "
                   "honest covariances",
    "fixed_sidebar": True,
}

# Parameter types such as "array_like, shape (D,)" become cross-references
# word by word; a word that names several attributes (``shape``) is then
# ambiguous. Unresolvable type words are silent (nitpicky is off); silence the
# ambiguous ones too.
suppress_warnings = ["ref.python"]
