"""The HTML that results show in Jupyter (``_repr_html_``): a header, a table and notes, escaped."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["html_table", "fmt", "short_array"]


def fmt(value: object, digits: int = 6) -> str:
    """A cell: numbers with ``digits`` significant digits, arrays summarised, None as a dash."""
    if value is None:
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}g}"
    if isinstance(value, (complex, np.complexfloating)):
        return f"{complex(value):.{digits}g}"
    if isinstance(value, np.ndarray):
        return short_array(value, digits)
    return str(value)


def short_array(a: np.ndarray, digits: int = 4, edge: int = 3) -> str:
    """An array on one line: all of it up to 2 * edge entries, else its ends and its shape."""
    a = np.asarray(a)
    with np.printoptions(precision=digits, threshold=2 * edge, edgeitems=edge, linewidth=10**6):
        text = np.array2string(a, separator=", ").replace("\n", "")
    return text if a.size <= 2 * edge else f"{text} (shape {a.shape})"


def html_table(title: str, header: Sequence[str], rows: Iterable[Sequence[object]],
               notes: Sequence[str] = (), max_rows: int = 50) -> str:
    """``<b>title</b>``, a table of ``rows`` under ``header`` (at most ``max_rows``, then a row
    saying how many were left out), and ``notes`` as lines below; every text escaped."""
    esc = html.escape
    rows = list(rows)
    head = "".join(f"<th>{esc(str(h))}</th>" for h in header)
    shown = rows[:max_rows]
    body = "".join("<tr>" + "".join(f"<td>{esc(fmt(v))}</td>" for v in row) + "</tr>" for row in shown)
    if len(rows) > len(shown):
        body += f'<tr><td colspan="{len(header)}">… {len(rows) - len(shown)} more rows</td></tr>'
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>" if header else ""
    foot = "".join(f"<div>{esc(n)}</div>" for n in notes if n)
    return f"<div><b>{esc(title)}</b>{table}{foot}</div>"
