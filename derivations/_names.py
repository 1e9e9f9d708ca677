"""Names: a tuple of names that documents itself.

The public tuples of names (``dynamics.STATUSES``, ``dynamics.REGIMES``, ...) are data, and a
user asking ``help(STATUSES)`` should read what each name means, not the docstring of
``tuple``. ``help`` and ``pydoc`` document an object's type, so each such tuple is an instance
of its own small subclass of ``Names`` whose docstring lists the meanings. It is a tuple in
every other respect: equal to (and hashing like) the plain tuple, indexable, iterable.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["Names"]


class Names(tuple):
    """A tuple of names whose ``help()`` explains each name (see ``Names.define``).

    Attributes
    ----------
    meanings : mapping str -> str
        Each name and what it means, in order (read-only).
    """

    __slots__ = ()
    meanings: Mapping[str, str] = {}

    @classmethod
    def define(cls, title: str, meanings: Mapping[str, str], *, module: str | None = None,
               summary: str = "") -> Names:
        """The tuple of the keys of ``meanings``, documented by ``meanings``.

        Parameters
        ----------
        title : str
            The name the tuple is published under (e.g. ``"STATUSES"``); the class of the
            result is called so, for ``help()``.
        meanings : mapping name -> str
            Each name and what it means, in order.
        module : str, optional
            The module that publishes it (shown by ``help()``).
        summary : str
            One line above the list of meanings.

        Returns
        -------
        Names
            The tuple, an instance of a subclass named ``title`` whose docstring lists the
            meanings.

        Raises
        ------
        TypeError
            ``meanings`` is not a non-empty mapping of strings to strings.
        """
        if not isinstance(meanings, Mapping) or not meanings:
            raise TypeError("meanings must be a non-empty dict {name: meaning}")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in meanings.items()):
            raise TypeError("meanings must map names (str) to meanings (str)")
        if not isinstance(title, str) or not title.isidentifier():
            raise TypeError(f"title must be an identifier; got {title!r}")
        lines = [summary or f"{title}: the names this tuple holds and what each means.", ""]
        lines += [f"{k!r}: {v}" for k, v in meanings.items()]
        lines += ["", "A tuple: equal to the plain tuple of these names."]
        attrs = {"__doc__": "\n".join(lines), "__slots__": (), "meanings": MappingProxyType(dict(meanings)),
                 "__module__": module or cls.__module__, "__qualname__": title}
        kind = type(title, (cls,), attrs)
        return kind(meanings)

    def __reduce__(self):
        return (_rebuild, (type(self).__qualname__, tuple(self.meanings.items()), type(self).__module__,
                           (type(self).__doc__ or "").split("\n", 1)[0]))

    def __repr__(self) -> str:
        return tuple.__repr__(self)


def _rebuild(title: str, items: tuple, module: str, summary: str) -> Names:
    return Names.define(title, dict(items), module=module, summary=summary)
