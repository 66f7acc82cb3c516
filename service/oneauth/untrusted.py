"""Decoding untrusted input once: JSON documents and text that may reach Postgres (I1).

Every JSON text that arrives from outside (request bodies, JOSE headers and
payloads) goes through :func:`loads`, and every string from a form, a query,
a header or a path through :func:`text_problem`. What they refuse would
otherwise surface deep inside a handler as a 500:

* nesting deeper than :data:`MAX_DEPTH` (the stdlib parser recurses, so a body
  of 60,000 ``[`` raises ``RecursionError``, which nobody catches);
* NUL, which Postgres ``text`` cannot hold (``invalid byte sequence``), and
  lone surrogates (``"\\ud800"`` is valid JSON but no UTF-8 encoder accepts it);
* numbers no column holds: integers beyond 64 bits, NaN and infinities;
* a member name given twice (which one wins differs between parsers).

The caller maps :class:`UntrustedInput` to its own error format (problem
details, RFC 6749 errors, or a JOSE "malformed" verdict).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = ["MAX_DEPTH", "UntrustedInput", "check_text", "loads", "text_problem"]

# API payloads are flat objects and JOSE headers flat too; 32 is far beyond
# any legitimate document and far below the parser's recursion limit.
MAX_DEPTH = 32
_MAX_INT = 2**63 - 1
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


class UntrustedInput(ValueError):
    """The input cannot be used. ``syntax``: not a (bounded) JSON text at all;
    otherwise a value inside it is unusable, and ``field`` names the top-level
    member it sits under when there is one."""

    def __init__(self, reason: str, *, syntax: bool = False, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.syntax = syntax
        self.field = field


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as Postgres text, or None when it can."""
    if value.isascii():
        return "contains a NUL character" if "\x00" in value else None
    found = _BAD_TEXT.search(value)
    if found is None:
        return None
    return "contains a NUL character" if found.group() == "\x00" else "is not valid Unicode"


def check_text(value: str, field: str | None = None) -> str:
    """``value`` unchanged, or :class:`UntrustedInput` naming ``field``."""
    problem = text_problem(value)
    if problem is not None:
        raise UntrustedInput(f"{field or 'a value'} {problem}", field=field)
    return value


def _constant(name: str) -> Any:
    raise UntrustedInput(f"{name} is not a number JSON allows", syntax=True)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UntrustedInput("a number is out of range", syntax=True)
    return value


def _int(text: str) -> int:
    # Checked on the digits first: int() of 5,000 digits is slow, then refused.
    if len(text) > 20 or abs(value := int(text)) > _MAX_INT:
        raise UntrustedInput("an integer is out of range", syntax=True)
    return value


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise UntrustedInput("a member name appears twice in one object", syntax=True)
    return obj


_DECODER = json.JSONDecoder(
    object_pairs_hook=_object, parse_float=_float, parse_int=_int, parse_constant=_constant
)


def loads(data: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value of ``data`` (UTF-8 when bytes, RFC 8259 section 8.1), checked
    for depth and text; raises :class:`UntrustedInput`."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = _DECODER.decode(text)
    except UntrustedInput:
        raise
    except UnicodeDecodeError:
        raise UntrustedInput("not UTF-8", syntax=True) from None
    except RecursionError:
        raise UntrustedInput(f"nested deeper than {max_depth} levels", syntax=True) from None
    except ValueError:
        raise UntrustedInput("not valid JSON", syntax=True) from None
    _check(value, max_depth)
    return value


def _check(value: Any, max_depth: int) -> None:
    # Iterative, so the check itself cannot recurse too deep.
    stack: list[tuple[Any, int, str | None]] = [(value, 0, None)]
    while stack:
        node, depth, field = stack.pop()
        if isinstance(node, str):
            check_text(node, field)
        elif isinstance(node, dict | list):
            if depth >= max_depth:
                raise UntrustedInput(f"nested deeper than {max_depth} levels", syntax=True)
            if isinstance(node, list):
                stack.extend((item, depth + 1, field) for item in node)
                continue
            for key, item in node.items():
                name = key if depth == 0 and text_problem(key) is None else field
                check_text(key, name)
                stack.append((item, depth + 1, name))
