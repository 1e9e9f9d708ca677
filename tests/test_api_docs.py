"""The public API documents itself: numpydoc sections that match the signatures, no ``Any``.

Every function, class, method and property reachable from ``ncdyn.__all__`` has a docstring; a
callable with arguments has a Parameters section naming exactly its signature's parameters
(``*args`` / ``**kwargs`` spelled as such); a callable whose body raises has a Raises section
(one that raises nothing needs none); a callable that returns something has a Returns (or
Yields) section; a class documents its Attributes (or the
Parameters of its constructor), every public dataclass field included. No annotation of a
public signature or public dataclass field contains ``typing.Any``. The section parsing is a
few lines of numpydoc's grammar (a title underlined with dashes), written here so the check
needs nothing beyond the standard library. Each check runs over every public item and reports
every offender in one failure message.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import re
import sys
import textwrap
import typing

import numpy.typing

import ncdyn

PACKAGES = ("derivations", "dynamics", "ncdyn")
_SECTION = re.compile(r"^(?P<title>[A-Z][A-Za-z ]+)\n(?P<rule>-{3,})$", re.MULTILINE)
_ENTRY = re.compile(r"^(?P<names>\**\w+(?:\s*,\s*\**\w+)*)\s*(?::.*)?$")


def _ours(obj: object) -> bool:
    return (getattr(obj, "__module__", None) or "").split(".")[0] in PACKAGES


def _function(obj: object) -> typing.Callable | None:
    """The plain function behind ``obj`` (through lru_cache and functools.wraps), or None."""
    inner = inspect.unwrap(obj) if callable(obj) else obj
    return inner if inspect.isfunction(inner) and _ours(inner) else None


def _members(cls: type, owner: str) -> dict[str, object]:
    """Public methods, class/static methods and properties of ``cls`` defined in our packages."""
    found: dict[str, object] = {}
    for base in cls.__mro__:
        if not _ours(base):
            continue
        for attr, raw in vars(base).items():
            if attr.startswith("_") or f"{owner}.{attr}" in found:
                continue
            if isinstance(raw, (property, functools.cached_property)):
                found[f"{owner}.{attr}"] = raw
            elif isinstance(raw, (staticmethod, classmethod)) or inspect.isfunction(raw):
                found[f"{owner}.{attr}"] = getattr(cls, attr)
    return found


def _public() -> dict[str, object]:
    items: dict[str, object] = {}
    for name in ncdyn.__all__:
        obj = getattr(ncdyn, name)
        if inspect.isclass(obj) and _ours(obj):
            items[name] = obj
            items.update(_members(obj, name))
        elif _function(obj) is not None:
            items[name] = obj
    return items


PUBLIC = _public()
CLASSES = {k: v for k, v in PUBLIC.items() if inspect.isclass(v)}
PROPERTIES = {k: v for k, v in PUBLIC.items() if isinstance(v, (property, functools.cached_property))}
CALLABLES = {k: v for k, v in PUBLIC.items() if k not in CLASSES and k not in PROPERTIES}


def sections(doc: str | None) -> dict[str, str]:
    """The numpydoc sections of a docstring, title -> body (dedented)."""
    text = inspect.cleandoc(doc or "")
    heads = list(_SECTION.finditer(text))
    out: dict[str, str] = {}
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        out[m["title"].strip()] = text[m.end() : end].strip("\n")
    return out


def entry_names(body: str) -> list[str]:
    """Names at the left margin of a Parameters/Attributes body (``a, b : float`` gives a and b)."""
    names: list[str] = []
    for line in body.splitlines():
        if not line or line[0].isspace():
            continue
        m = _ENTRY.match(line.strip())
        if m:
            names.extend(n.strip() for n in m["names"].split(","))
    return names


def signature_names(func: typing.Callable) -> list[str]:
    names = []
    for p in inspect.signature(func).parameters.values():
        if p.name in ("self", "cls"):
            continue
        prefix = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "")
        names.append(prefix + p.name)
    return names


def _has_any(annotation: object) -> bool:
    """Whether ``typing.Any`` appears in ``annotation``; NumPy's own generics (the ``dtype[Any]``
    inside ``ArrayLike``, the shape of ``NDArray``) are NumPy's spelling, not ours."""
    if annotation is typing.Any:
        return True
    origin = typing.get_origin(annotation)
    if origin is not None and (getattr(origin, "__module__", "") or "").startswith("numpy"):
        return False
    if isinstance(annotation, (list, tuple)):  # the argument list of Callable[[...], R]
        return any(_has_any(a) for a in annotation)
    return any(_has_any(a) for a in typing.get_args(annotation))


@functools.cache
def _type_checking_names(module_name: str) -> dict[str, object]:
    """The module's globals plus the names it imports under ``if TYPE_CHECKING:`` (annotations
    such as ``matplotlib.axes.Axes`` that are not worth importing at run time)."""
    module = sys.modules[module_name]
    names = dict(vars(module))
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            exec(compile(ast.Module(node.body, type_ignores=[]), module.__file__, "exec"), names)
    return names


def _hints(obj: object) -> dict[str, object]:
    """The evaluated annotations of a function, method, property or class."""
    if inspect.isclass(obj):  # the fields, and the constructor (a dataclass's reads the fields' names)
        namespace: dict[str, object] = {}
        for base in reversed(obj.__mro__):
            if _ours(base):
                namespace |= _type_checking_names(base.__module__)
        hints = {k: v for k, v in typing.get_type_hints(obj, localns=namespace).items() if not k.startswith("_")}
        if _ours(obj.__init__):
            init = typing.get_type_hints(obj.__init__, localns=namespace)
            hints |= {f"__init__ {k}": v for k, v in init.items()}
        return hints
    target = obj.fget if isinstance(obj, property) else getattr(obj, "func", obj)
    target = inspect.unwrap(target)
    return typing.get_type_hints(target, localns=_type_checking_names(target.__module__))


def test_the_audit_sees_the_api():
    """The collection is not empty by accident: the main entry points and their methods are in it."""
    for name in ("integrate", "equilibria", "derive", "ODESystem", "ODESystem.check_params", "Solution"):
        assert name in PUBLIC, name
    assert len(CALLABLES) > 80 and len(CLASSES) > 30


def test_the_parser_reads_numpydoc():
    doc = """Summary.

    Parameters
    ----------
    a, *args : float
        The first.
    **kwargs
        More.

    Returns
    -------
    float
    """
    parsed = sections(doc)
    assert set(parsed) == {"Parameters", "Returns"}
    assert entry_names(parsed["Parameters"]) == ["a", "*args", "**kwargs"]
    assert signature_names(lambda a, *args, **kwargs: None) == ["a", "*args", "**kwargs"]
    assert _has_any(typing.Mapping[str, typing.Callable[[typing.Any], int]])
    assert _has_any(typing.Any | None)
    assert not _has_any(typing.Mapping[str, float | int])
    assert not _has_any(typing.Mapping[str, float | numpy.typing.ArrayLike])
    assert not _has_any(numpy.typing.NDArray[numpy.float64] | None)


def raises_directly(func: typing.Callable) -> bool:
    """Whether the body of ``func`` has a ``raise`` statement (nested functions and classes,
    which raise when they are called, not counted). A body without source counts as raising."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError):
        return True
    (top,) = tree.body
    stack = list(ast.iter_child_nodes(top))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Raise):
            return True
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(node))
    return False


def function_problems(name: str, obj: object) -> list[str]:
    """What is missing or wrong in the docstring of the function or method ``obj``."""
    func = inspect.unwrap(obj)
    text = inspect.getdoc(obj)
    if not text:
        return [f"{name} has no docstring"]
    doc = sections(text)
    problems = []
    expected = signature_names(func)
    if expected:
        if "Parameters" not in doc:
            problems.append(f"{name}: no Parameters section")
        else:
            documented = entry_names(doc["Parameters"])
            if sorted(documented) != sorted(expected):
                problems.append(f"{name}: Parameters documents {documented}, the signature has {expected}")
    if "Raises" not in doc and raises_directly(func):
        problems.append(f"{name}: raises, but has no Raises section")
    returns = _hints(obj).get("return", inspect.Signature.empty)
    if returns is not type(None) and "Returns" not in doc and "Yields" not in doc:
        problems.append(f"{name}: no Returns section")
    return problems


def class_problems(name: str, cls: type) -> list[str]:
    """What is missing in the docstring of the class ``cls``."""
    doc = sections(cls.__doc__)
    if "Attributes" not in doc and "Parameters" not in doc:
        return [f"{name}: no Attributes or Parameters section"]
    if dataclasses.is_dataclass(cls):
        documented = set(entry_names(doc.get("Attributes", ""))) | set(entry_names(doc.get("Parameters", "")))
        fields = {f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")}
        if not fields <= documented:
            return [f"{name}: fields {sorted(fields - documented)} are not documented"]
    return []


def any_problems(name: str, obj: object) -> list[str]:
    bad = sorted(k for k, v in _hints(obj).items() if _has_any(v))
    return [f"{name}: annotations of {bad} contain Any"] if bad else []


def _report(problems: list[str], what: str) -> str:
    return f"{len(problems)} {what}:\n" + "\n".join(problems)


def test_the_checks_find_offenders():
    """Each check reports what it should (and nothing on a well-documented function)."""

    def good(x: int, *args: int) -> int:
        """Summary.

        Parameters
        ----------
        x, *args : int
            Numbers.

        Returns
        -------
        int
        """
        return x

    def undocumented(x: int) -> int:
        return x

    def wrong_parameters(x: int, y: int) -> None:
        """Summary.

        Parameters
        ----------
        x : int
            A number.
        """

    def raising(x: int) -> None:
        """Summary.

        Parameters
        ----------
        x : int
            A number.
        """
        if x < 0:
            raise ValueError("x must be >= 0")

    def raising_later(x: int) -> typing.Callable[[], None]:
        """Summary.

        Parameters
        ----------
        x : int
            A number.

        Returns
        -------
        callable
        """
        def inner() -> None:
            raise ValueError(x)
        return inner

    def no_returns(x: int) -> int:
        """Summary.

        Parameters
        ----------
        x : int
            A number.
        """
        return x

    def uses_any(x: typing.Any) -> None:
        """Summary.

        Parameters
        ----------
        x : anything
        """

    @dataclasses.dataclass
    class Undocumented:
        """Summary.

        Attributes
        ----------
        a : int
        """

        a: int
        b: int

    assert function_problems("good", good) == [] and any_problems("good", good) == []
    assert function_problems("raising_later", raising_later) == []
    assert function_problems("undocumented", undocumented) == ["undocumented has no docstring"]
    assert function_problems("wrong_parameters", wrong_parameters) == [
        "wrong_parameters: Parameters documents ['x'], the signature has ['x', 'y']"]
    assert function_problems("raising", raising) == ["raising: raises, but has no Raises section"]
    assert function_problems("no_returns", no_returns) == ["no_returns: no Returns section"]
    assert any_problems("uses_any", uses_any) == ["uses_any: annotations of ['x'] contain Any"]
    assert class_problems("Undocumented", Undocumented) == ["Undocumented: fields ['b'] are not documented"]


def test_function_docstring_sections():
    problems = [p for name in sorted(CALLABLES) for p in function_problems(name, CALLABLES[name])]
    assert not problems, _report(problems, f"of {len(CALLABLES)} public functions and methods fail")


def test_property_docstrings():
    problems = [f"{name} has no docstring" for name in sorted(PROPERTIES) if not inspect.getdoc(PROPERTIES[name])]
    assert not problems, _report(problems, f"of {len(PROPERTIES)} public properties fail")


def test_class_docstrings():
    problems = [p for name in sorted(CLASSES) for p in class_problems(name, CLASSES[name])]
    assert not problems, _report(problems, f"of {len(CLASSES)} public classes fail")


def test_no_any_in_public_annotations():
    problems = [p for name in sorted(PUBLIC) for p in any_problems(name, PUBLIC[name])]
    assert not problems, _report(problems, f"of {len(PUBLIC)} public items fail")
