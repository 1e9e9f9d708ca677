"""The documentation's content pages (getting started, the science, the how-to guides) run as
written and print what they show: every ```python block of a page is one doctest, in the
page's own namespace, as tests/test_readme.py does for the README."""

import doctest
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = (
    "getting_started.md",
    "interface.md",
    "conventions.md",
    "science/index.md",
    "science/models.md",
    "science/approximations.md",
    "science/direction.md",
    "science/validity.md",
    "howto/index.md",
    "howto/verify.md",
    "howto/own_system.md",
    "howto/equilibria.md",
    "howto/bifurcation.md",
    "howto/portraits.md",
    "howto/network.md",
    "howto/matrix.md",
    "howto/sweeps.md",
    "howto/continuation.md",
    "howto/piecewise.md", "howto/noise.md",
)
# pages that are recipes: each must show runnable code
RECIPES = ("getting_started.md",
           *(page for page in PAGES if page.startswith("howto/") and not page.endswith("index.md")))
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def python_blocks(page):
    """The ```python blocks of a MyST page, in order."""
    return re.findall(r"^```python\n(.*?)^```", (DOCS / page).read_text(encoding="utf-8"), flags=re.S | re.M)


def doctest_text(page):
    """The page with every line outside its ```python blocks blanked, so that a failure's line
    number is the page's own."""
    lines, inside = [], False
    for line in (DOCS / page).read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            inside = line == "```python"
            lines.append("")
        else:
            lines.append(line if inside else "")
    return "\n".join(lines)


def run_page(page):
    """Run the page's python blocks as one doctest; return (failed, attempted) and the report."""
    test = doctest.DocTestParser().get_doctest(doctest_text(page), {}, page, str(DOCS / page), 0)
    report = []
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    runner.run(test, out=report.append)
    return runner.summarize(verbose=False), "".join(report)


@pytest.mark.parametrize("page", [page for page in PAGES if (DOCS / page).is_file() and python_blocks(page)])
def test_page_examples_print_what_they_show(page):
    (failed, attempted), report = run_page(page)
    assert attempted > 0
    assert failed == 0, report


@pytest.mark.parametrize("page", PAGES)
def test_page_exists_and_its_code_is_doctest(page):
    assert (DOCS / page).is_file(), f"docs/{page} is missing"
    blocks = python_blocks(page)
    assert all(">>>" in block for block in blocks), f"docs/{page}: a python block without >>> lines is not tested"
    if page in RECIPES:
        assert blocks, f"docs/{page} shows no runnable code"


def test_section_indexes_list_their_pages():
    for section in ("science", "howto"):
        index = (DOCS / section / "index.md").read_text(encoding="utf-8")
        toctree = re.search(r"```\{toctree\}\n(.*?)```", index, flags=re.S)
        assert toctree, f"docs/{section}/index.md has no toctree"
        listed = {line.strip() for line in toctree.group(1).splitlines() if line.strip() and not line.startswith(":")}
        pages = {page.split("/")[1][:-3] for page in PAGES
                 if page.startswith(f"{section}/") and not page.endswith("index.md")}
        assert listed == pages, f"docs/{section}/index.md lists {sorted(listed)}, the section has {sorted(pages)}"
