"""Build helpers for the ncdyn documentation: the gallery's image scraper and arguments, and
cross-references from implementation modules to the public ``ncdyn`` names.

They live in a module (not in conf.py) so that sphinx-gallery can import them by name and
Sphinx can cache the configuration.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from sphinx_gallery.scrapers import figure_rst

#: PNG files older than this (written before the build started) are never touched.
_BUILD_START = time.time()

#: Small arguments for the examples that take minutes with their defaults.
GALLERY_ARGV = {
    "theory_vs_network.py": ["--widths", "4", "16", "--max-exact-width", "16", "--t1", "1"],
    "real_data_digits.py": ["--h", "16", "--t1", "5"],
}


def reset_argv(gallery_conf: dict, script_vars: dict) -> list[str]:
    """The command-line arguments an example runs with in the gallery (``sys.argv[1:]``)."""
    return list(GALLERY_ARGV.get(Path(script_vars["src_file"]).name, []))


def png_scraper(block: object, block_vars: dict, gallery_conf: dict) -> str:
    """Move the PNG files a code block wrote next to its example into the gallery's images.

    The toolkit's plot functions return bare matplotlib figures (not pyplot ones), which the
    examples save with ``fig.savefig("name.png")``; sphinx-gallery runs an example with its own
    folder as the working directory, so the files appear there. Each new file is moved (not
    copied) to the next image path of the example, so nothing is left in ``examples/``.
    """
    folder = Path(block_vars["src_file"]).parent
    fresh = sorted((p for p in folder.glob("*.png") if p.stat().st_mtime >= _BUILD_START),
                   key=lambda p: (p.stat().st_mtime, p.name))
    images = []
    for png, target in zip(fresh, block_vars["image_path_iterator"]):
        shutil.move(str(png), target)
        images.append(target)
    return figure_rst(images, gallery_conf["src_dir"])


def _public_target(target: str) -> str | None:
    """``derivations._system.ODESystem`` -> ``ncdyn.ODESystem`` where ncdyn exports the name."""
    import ncdyn

    head, _, rest = target.partition(".")
    if head not in ("derivations", "dynamics", "ncdyn") or not rest:
        return None
    parts = target.split(".")
    for i in range(1, len(parts)):
        if parts[i] in ncdyn.__all__:
            return ".".join(["ncdyn", *parts[i:]])
    return None


def _resolve_private(app, env, node, contnode):
    """Resolve references to implementation modules (as type hints write them) to the documented
    public names."""
    if node.get("refdomain") != "py":
        return None
    public = _public_target(node.get("reftarget", ""))
    if public is None or public == node.get("reftarget"):
        return None
    domain = env.get_domain("py")
    return domain.resolve_xref(env, node.get("refdoc"), app.builder, node.get("reftype"), public, node, contnode)


def _defining_module_doc(name: str, obj: object) -> list[str] | None:
    """The docstring written under ``name = ...`` in the module that defines a re-exported
    constant (autodoc looks only in ``ncdyn/__init__.py`` and would show the docstring of
    ``tuple``)."""
    from sphinx.pycode import ModuleAnalyzer

    for modname, module in sorted(sys.modules.items()):
        if modname.partition(".")[0] not in ("derivations", "dynamics") or getattr(module, name, None) is not obj:
            continue
        try:
            docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
        except Exception:  # a module without source: keep looking
            continue
        if ("", name) in docs:
            return list(docs[("", name)])
    return None


def _constant_docstring(app, what, name, obj, options, lines):
    if what != "data" or not name.startswith("ncdyn."):
        return
    import ncdyn

    if isinstance(obj, ncdyn.Names):  # its own type documents each name
        return
    doc = _defining_module_doc(name.rpartition(".")[2], obj)
    if doc is not None:
        lines[:] = doc


def _readable_signature(app, what, name, obj, options, signature, return_annotation):
    """Dataclass fields with ``default_factory`` print as ``<factory>``, which Sphinx cannot
    parse (it would show the whole signature as plain text): show ``...`` instead."""
    if signature and "<factory>" in signature:
        return signature.replace("<factory>", "..."), return_annotation
    return None


def setup(app):
    app.connect("missing-reference", _resolve_private)
    app.connect("autodoc-process-docstring", _constant_docstring)
    app.connect("autodoc-process-signature", _readable_signature)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
