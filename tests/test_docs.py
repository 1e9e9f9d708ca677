"""The documentation site builds with warnings as errors, its API reference documents every
public name of ``ncdyn`` exactly once, and it reads offline: no page loads a script, a stylesheet
or any other resource from the network, and MathJax is part of the site.

The build executes nothing (``plot_gallery=0``: the gallery pages are generated from the
example scripts without running them; ``nb_execution_mode=off``: the tutorial is executed by
its own test) and fetches nothing from the network.
"""

import inspect
import re
import subprocess
import sys
import types
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

pytest.importorskip("sphinx")
pytest.importorskip("sphinx_gallery")
pytest.importorskip("myst_nb")

from sphinx.util.inventory import InventoryFile  # noqa: E402

import ncdyn  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
API_PAGES = ("models", "systems", "verify", "integrate", "equilibria", "bifurcation", "phase_plane", "network")


# Sphinx's own napoleon still reads autodoc options the old way (a deprecation, not our warning).
pytestmark = pytest.mark.filterwarnings("ignore:The mapping interface for autodoc options:PendingDeprecationWarning")


# One build checked by one test: pytest-xdist would otherwise build the site once per worker.
# The build runs in its own process: autodoc (autodoc_preserve_defaults) rewrites the signatures
# of the functions it documents, which would change what later tests in this process read.
def test_site_builds_and_documents_the_public_api(tmp_path):
    site = tmp_path / "html"
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-d", str(tmp_path / "doctrees"),
         "-D", "plot_gallery=0", "-D", "nb_execution_mode=off", str(DOCS), str(site)],
        capture_output=True, text=True,
    )
    assert build.returncode == 0, f"sphinx-build -W failed:\n{build.stderr[-4000:]}"
    _check_key_pages(site)
    _check_every_public_name_documented_once(site)
    _check_api_pages_show_docstrings(site)
    _check_site_reads_offline(site)


def _check_key_pages(site):
    pages = ["index", "getting_started", "tutorial", "science/index", "howto/index", "gallery/index",
             "api/index", *(f"api/{name}" for name in API_PAGES)]
    missing = [page for page in pages if not (site / f"{page}.html").is_file()]
    assert not missing, f"pages missing from the built site: {missing}"
    examples = sorted(p.stem for p in (ROOT / "examples").glob("*.py"))
    assert examples, "no example scripts found"
    gallery = (site / "gallery" / "index.html").read_text(encoding="utf-8")
    for name in examples:
        assert (site / "gallery" / f"{name}.html").is_file(), f"no gallery page for examples/{name}.py"
        assert f"{name}.html" in gallery, f"the gallery index does not link examples/{name}.py"
    assert ncdyn.__version__ in (site / "index.html").read_text(encoding="utf-8")


def _documented(site):
    """Every Python object of the built site, full name -> how many times it is described."""
    with open(site / "objects.inv", "rb") as f:
        inventory = InventoryFile.load(f, "", lambda base, uri: uri)
    names = Counter()
    for domain_role, entries in inventory.items():
        if domain_role.startswith("py:") and domain_role != "py:module":
            for name, entry in entries.items():
                names[name] += 1
    return names


def _public_names():
    return [name for name in ncdyn.__all__
            if name != "__version__" and not isinstance(getattr(ncdyn, name), types.ModuleType)]


def _check_every_public_name_documented_once(site):
    documented = _documented(site)
    public = _public_names()
    assert len(public) > 50
    missing = [name for name in public if documented[f"ncdyn.{name}"] == 0]
    assert not missing, f"names of ncdyn.__all__ missing from docs/api/*.rst: {missing}"
    twice = [name for name in public if documented[f"ncdyn.{name}"] > 1]
    assert not twice, f"documented more than once: {twice}"
    # documented under ncdyn only, not again under the package that defines it
    elsewhere = sorted(name for name in documented
                       if name.startswith(("derivations.", "dynamics.")) and "." not in name.partition(".")[2]
                       and name.partition(".")[2] in public)
    assert not elsewhere, f"also documented under its package: {elsewhere}"


def _check_api_pages_show_docstrings(site):
    """Each public function's page carries its own docstring's first line (not an empty entry), and
    a re-exported constant shows the docstring written under it, not the docstring of its type."""
    text = "".join((site / "api" / f"{page}.html").read_text(encoding="utf-8") for page in API_PAGES)
    first_lines = {name: inspect.getdoc(getattr(ncdyn, name)).splitlines()[0]
                   for name in ("integrate", "equilibria", "derive", "simulate_network")}
    for name, line in first_lines.items():
        words = line.split()[:3]
        assert " ".join(words) in text.replace("\n", " "), f"docstring of {name} not on its API page"
    assert "Built-in immutable sequence" not in text
    assert "int([x]) -&gt; integer" not in text and "int([x]) -> integer" not in text


# What a browser fetches on opening a page: these tags' attributes (for <link> only with these rel
# values) and the URLs of its inline CSS.
_LOADED = {"script": "src", "link": "href", "img": "src", "iframe": "src", "embed": "src",
           "source": "src", "audio": "src", "video": "src", "object": "data"}
_LOADING_RELS = {"stylesheet", "preload", "modulepreload", "icon", "shortcut", "apple-touch-icon", "manifest"}
_TAG = re.compile(r"""<(?:%s)\b(?:"[^"]*"|'[^']*'|[^'">])*>""" % "|".join(_LOADED), flags=re.I)
_INLINE_CSS = re.compile(r"""<style\b[^>]*>(.*?)</style>|\sstyle=(?:"([^"]*)"|'([^']*)')""", flags=re.I | re.S)
_CSS_URL = re.compile(r"""(?:@import\s+|url\(\s*)["']?([^"')\s;]+)""")


class _Tag(HTMLParser):
    """The name and attributes of one start tag."""

    def handle_starttag(self, tag, attrs):
        self.tag, self.attrs = tag, {name: value or "" for name, value in attrs}


def _loaded_urls(html):
    """The URLs a browser loads on opening the page ``html`` (a regular-expression scan for the
    loading tags: a full HTML parse of every page would take seconds)."""
    urls = []
    for match in _TAG.finditer(html):
        parser = _Tag(convert_charrefs=True)
        parser.feed(match.group())
        attrs = parser.attrs
        if parser.tag == "link" and not _LOADING_RELS & set(attrs.get("rel", "").lower().split()):
            continue
        if attrs.get(_LOADED[parser.tag]):
            urls.append(attrs[_LOADED[parser.tag]])
    for css in _INLINE_CSS.finditer(html):
        urls.extend(_CSS_URL.findall("".join(part or "" for part in css.groups())))
    return urls


def _is_remote(url):
    return url.startswith("//") or urlsplit(url).scheme.lower() in {"http", "https", "ftp", "ws", "wss"}


def _check_site_reads_offline(site):
    """No page of the built site loads anything from the network (a reader offline would see raw
    TeX and broken pages), every local resource a page loads is in the site, and the pages with
    equations load a MathJax that is."""
    remote, missing, math_pages, local_mathjax = [], [], [], []
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 20
    for page in pages:
        text = page.read_text(encoding="utf-8")
        urls = _loaded_urls(text)
        name = page.relative_to(site).as_posix()
        for url in urls:
            if _is_remote(url):
                remote.append(f"{name}: {url}")
            elif not urlsplit(url).scheme:  # data: URIs are part of the page
                path = unquote(urlsplit(url).path)
                if path and not (page.parent / path).is_file():
                    missing.append(f"{name}: {url}")
        if 'class="math' in text:
            math_pages.append(name)
            if any("mathjax" in url.lower() and not _is_remote(url) for url in urls):
                local_mathjax.append(name)
    for css in site.rglob("*.css"):
        remote.extend(f"{css.relative_to(site).as_posix()}: {url}"
                      for url in _CSS_URL.findall(css.read_text(encoding="utf-8")) if _is_remote(url))
    assert not remote, f"{len(remote)} resources loaded from the network:\n" + "\n".join(remote[:20])
    assert not missing, "resources missing from the built site:\n" + "\n".join(missing[:20])
    assert "science/direction.html" in math_pages, "no typeset equations on the direction page"
    without = sorted(set(math_pages) - set(local_mathjax))
    assert not without, f"pages with equations but no local MathJax: {without}"


def test_documentation_section_of_the_readme_gives_the_build_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## Documentation" in readme
    section = readme.split("## Documentation", 1)[1].split("\n## ", 1)[0]
    assert "sphinx-build" in section and " docs " in section
