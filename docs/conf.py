"""Sphinx configuration for the ncdyn documentation.

Why Sphinx: the docstrings are numpydoc (Parameters / Returns / Raises), which autodoc with
napoleon renders as they are, and the examples are plain scripts, which sphinx-gallery runs
and turns into pages with their output and figures. Markdown pages and the tutorial notebook
go through myst-nb (no pandoc). Nothing is fetched from the network while building, and the
built site reads offline: sphinx-mathjax-offline copies MathJax into ``_static/mathjax`` (the
equations of every page and the notebook's LaTeX output), and no page loads a remote script.

Build the site (the gallery's examples and the tutorial notebook are executed)::

    sphinx-build -W --keep-going -b html docs docs/_build/html

A fast build that executes nothing (what the test suite runs)::

    sphinx-build -W --keep-going -b html -D plot_gallery=0 -D nb_execution_mode=off docs docs/_build/html
"""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))

import ncdyn  # noqa: E402

project = "ncdyn"
author = "the ncdyn authors"
copyright = "the ncdyn authors"
release = ncdyn.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax from _static/mathjax, not from a CDN
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
    "myst_nb",
    "ncdyn_docs",
]

exclude_patterns = [
    "_build",
    "_ext",
    "Thumbs.db",
    ".DS_Store",
    "**.ipynb_checkpoints",
    # sphinx-gallery writes a notebook next to each generated page: a download, not a source
    "gallery/*.ipynb",
    # timing tables an older build may have left: they load jQuery and DataTables from a CDN
    "sg_execution_times.rst",
    "gallery/sg_execution_times.rst",
]
html_static_path = ["_static"]

# -- HTML -------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"ncdyn {release}"
html_css_files = ["ncdyn.css"]
html_theme_options = {"navigation_with_keys": True}

# -- autodoc / napoleon ------------------------------------------------------------------
# The API pages document every name as it is imported by users: ``ncdyn.<name>``.
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
# Keep the aliases' names in signatures instead of spelling out their unions.
autodoc_type_aliases = {"Params": "ncdyn.Params", "ArrayLike": "numpy.typing.ArrayLike"}
autodoc_class_signature = "mixed"
python_use_unqualified_type_names = True
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True
add_module_names = False
# Shapes in numpydoc types, e.g. "array, shape (n, n_states)", are read as cross-references;
# a word that names attributes of several classes (n_states, name) must not fail the build.
suppress_warnings = ["ref.python"]

# -- myst / myst-nb ------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
nb_execution_mode = "cache"  # the test build passes -D nb_execution_mode=off
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_merge_streams = True

# -- sphinx-gallery ----------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "gallery",
    "filename_pattern": r".*\.py$",  # run every example, not only plot_*.py
    "ignore_pattern": r"__init__\.py",
    "image_scrapers": ("matplotlib", "ncdyn_docs.png_scraper"),
    "reset_argv": "ncdyn_docs.reset_argv",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "capture_repr": (),
    "show_memory": False,
    "min_reported_time": 5,
    # the timing tables would load jQuery and DataTables from a CDN: the site must read offline
    "write_computation_times": False,
}
