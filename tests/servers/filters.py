"""What both emulators filter on: RFC 3339 datetimes and intervals, the STAC Query extension and
a CQL2 subset (cql2-json and cql2-text comparisons joined by and / or / not).

Why a subset and not a CQL2 library: searches on ``eo:cloud_cover`` (and other item properties)
are all a scene source sends, and a clear 400 for anything else is more useful in a test than a
silently wrong match. Sources: STAC API item-search ``datetime`` (RFC 3339 date-time or an
interval with ``..`` open ends, https://api.stacspec.org/v1.0.0/item-search), the Query
extension (https://github.com/stac-api-extensions/query: ``eq neq lt lte gt gte startsWith
endsWith contains in``) and OGC CQL2 basic comparisons (https://docs.ogc.org/is/21-065r2/21-065r2.html),
which Sentinel Hub Catalog 1.0.0 also takes in ``filter``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
QUERY_OPS = {"eq", "neq", "lt", "lte", "gt", "gte", "startsWith", "endsWith", "contains", "in"}
COMPARISONS = {"=", "<>", "<", "<=", ">", ">="}


class FilterError(ValueError):
    """A filter the emulators cannot evaluate; servers answer it with 400."""


def parse_datetime(text: str) -> datetime:
    """An RFC 3339 date-time (``Z`` or offset required) as an aware UTC datetime."""
    if not isinstance(text, str) or not RFC3339.fullmatch(text):
        raise FilterError(f"{text!r} is not an RFC 3339 date-time such as 2019-12-31T14:30:00Z")
    return datetime.fromisoformat(text.upper().replace("Z", "+00:00")).astimezone(UTC)


def parse_interval(text: str) -> tuple[datetime | None, datetime | None]:
    """``instant`` -> (t, t); ``a/b`` with ``..`` (or empty) for an open end -> (a or None, b or None)."""
    if not isinstance(text, str) or not text:
        raise FilterError("datetime must be a non-empty string")
    if "/" not in text:
        instant = parse_datetime(text)
        return instant, instant
    first, _, second = text.partition("/")
    start = None if first in ("", "..") else parse_datetime(first)
    end = None if second in ("", "..") else parse_datetime(second)
    if start is None and end is None:
        raise FilterError(f"datetime {text!r} is open at both ends")
    if start is not None and end is not None and start > end:
        raise FilterError(f"datetime {text!r} starts after it ends")
    return start, end


def in_interval(when: datetime, interval: tuple[datetime | None, datetime | None]) -> bool:
    start, end = interval
    return (start is None or when >= start) and (end is None or when <= end)


def _compare(op: str, left: Any, right: Any) -> bool:
    if left is None or right is None:
        return False
    if isinstance(right, datetime) and isinstance(left, str):
        left = parse_datetime(left)
    try:
        if op in ("=", "eq"):
            return bool(left == right)
        if op in ("<>", "neq"):
            return bool(left != right)
        if op in ("<", "lt"):
            return bool(left < right)
        if op in ("<=", "lte"):
            return bool(left <= right)
        if op in (">", "gt"):
            return bool(left > right)
        if op in (">=", "gte"):
            return bool(left >= right)
    except TypeError as exc:
        raise FilterError(f"cannot compare {left!r} {op} {right!r}") from exc
    raise FilterError(f"unsupported comparison {op!r}")


def query_matches(query: Mapping[str, Any], props: Mapping[str, Any]) -> bool:
    """The STAC Query extension: ``{"eo:cloud_cover": {"lt": 20}}`` against item properties."""
    for name, ops in query.items():
        if not isinstance(ops, Mapping):
            raise FilterError(f"query[{name!r}] must be an object of operators such as {{'lt': 20}}")
        value = props.get(name)
        for op, arg in ops.items():
            if op not in QUERY_OPS:
                raise FilterError(f"query operator {op!r} is not one of {sorted(QUERY_OPS)}")
            if op == "in":
                ok = value in arg
            elif op in ("startsWith", "endsWith", "contains"):
                text = str(value or "")
                ok = {
                    "startsWith": text.startswith,
                    "endsWith": text.endswith,
                    "contains": text.__contains__,
                }[op](str(arg))
            else:
                ok = _compare(op, value, arg)
            if not ok:
                return False
    return True


def _operand(node: Any, props: Mapping[str, Any]) -> Any:
    if isinstance(node, Mapping):
        if "property" in node:
            return props.get(str(node["property"]))
        if "timestamp" in node:
            return parse_datetime(str(node["timestamp"]))
        if "date" in node:
            return parse_datetime(f"{node['date']}T00:00:00Z")
        raise FilterError(f"unsupported CQL2 operand {node!r}")
    return node


def cql2_matches(expr: Any, props: Mapping[str, Any]) -> bool:
    """Evaluate a cql2-json expression (``and or not = <> < <= > >= in between isNull``)."""
    if isinstance(expr, bool):
        return expr
    if not isinstance(expr, Mapping) or "op" not in expr or not isinstance(expr.get("args"), list):
        raise FilterError(f"a CQL2 expression is an object with 'op' and 'args', got {expr!r}")
    op, args = str(expr["op"]).lower(), expr["args"]
    if op == "and":
        return all(cql2_matches(a, props) for a in args)
    if op == "or":
        return any(cql2_matches(a, props) for a in args)
    if op == "not":
        return not cql2_matches(args[0], props)
    values = [_operand(a, props) for a in args]
    if op in COMPARISONS and len(values) == 2:
        return _compare(op, values[0], values[1])
    if op == "in" and len(values) == 2 and isinstance(values[1], list):
        return values[0] in values[1]
    if op == "between" and len(values) == 3:
        return _compare(">=", values[0], values[1]) and _compare("<=", values[0], values[2])
    if op == "isnull" and len(values) == 1:
        return values[0] is None
    raise FilterError(f"CQL2 operator {expr['op']!r} with {len(args)} args is not supported by the emulator")


_TOKEN = re.compile(
    r"\s*(?:(?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|'(?P<str>(?:[^']|'')*)'|(?P<op><>|<=|>=|=|<|>)"
    r"|(?P<paren>[(),])|(?P<word>[A-Za-z_][\w:.\-]*)|\"(?P<qword>[^\"]+)\")"
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text.rstrip()):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise FilterError(f"cannot parse cql2-text near {text[pos : pos + 20]!r}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


class _TextParser:
    """cql2-text -> cql2-json: ``a < 1 AND (b = 'x' OR NOT c >= 2)`` and TIMESTAMP('...')."""

    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def _peek(self) -> tuple[str, str]:
        return self.toks[self.i] if self.i < len(self.toks) else ("end", "")

    def _next(self) -> tuple[str, str]:
        tok = self._peek()
        self.i += 1
        return tok

    def _keyword(self, word: str) -> bool:
        kind, value = self._peek()
        if kind == "word" and value.upper() == word:
            self.i += 1
            return True
        return False

    def parse(self) -> Any:
        expr = self._or()
        if self._peek()[0] != "end":
            raise FilterError(f"unexpected {self._peek()[1]!r} in cql2-text")
        return expr

    def _or(self) -> Any:
        args = [self._and()]
        while self._keyword("OR"):
            args.append(self._and())
        return args[0] if len(args) == 1 else {"op": "or", "args": args}

    def _and(self) -> Any:
        args = [self._not()]
        while self._keyword("AND"):
            args.append(self._not())
        return args[0] if len(args) == 1 else {"op": "and", "args": args}

    def _not(self) -> Any:
        if self._keyword("NOT"):
            return {"op": "not", "args": [self._not()]}
        if self._peek() == ("paren", "("):
            self._next()
            expr = self._or()
            if self._next() != ("paren", ")"):
                raise FilterError("missing ')' in cql2-text")
            return expr
        left = self._value()
        kind, op = self._next()
        if kind != "op":
            raise FilterError(f"expected a comparison operator after {left!r}, got {op!r}")
        return {"op": op, "args": [left, self._value()]}

    def _value(self) -> Any:
        kind, value = self._next()
        if kind == "num":
            return float(value) if any(c in value for c in ".eE") else int(value)
        if kind == "str":
            return value.replace("''", "'")
        if kind == "qword":
            return {"property": value}
        if kind == "word" and value.upper() in ("TIMESTAMP", "DATE") and self._next() == ("paren", "("):
            inner = self._next()
            if inner[0] != "str" or self._next() != ("paren", ")"):
                raise FilterError(f"{value}(...) takes one quoted string")
            return {value.lower(): inner[1]}
        if kind == "word" and value.upper() in ("TRUE", "FALSE"):
            return value.upper() == "TRUE"
        if kind == "word":
            return {"property": value}
        raise FilterError(f"unexpected {value!r} in cql2-text")


def parse_cql2_text(text: str) -> Any:
    """cql2-text (comparisons, AND / OR / NOT, parentheses) as the equivalent cql2-json."""
    return _TextParser(text).parse()


def compile_filter(value: Any, lang: str | None) -> Any:
    """The cql2-json of a ``filter`` given as cql2-json (object or JSON text) or cql2-text."""
    if isinstance(value, Mapping):
        if lang not in (None, "cql2-json"):
            raise FilterError(f"filter is a JSON object but filter-lang is {lang!r}; use cql2-json")
        expr: Any = value
    elif isinstance(value, str) and lang == "cql2-json":
        try:
            expr = json.loads(value)
        except json.JSONDecodeError as exc:
            raise FilterError(f"filter-lang is cql2-json but filter is not JSON: {exc}") from exc
    elif isinstance(value, str):
        expr = parse_cql2_text(value)
    else:
        raise FilterError(
            f"filter must be cql2-json (object) or cql2-text (string), got {type(value).__name__}"
        )
    check_cql2(expr)  # unsupported operators fail before any item is scanned
    return expr


def check_cql2(expr: Any) -> None:
    """Raise :class:`FilterError` unless ``expr`` is cql2-json the emulators can evaluate."""
    if isinstance(expr, bool):
        return
    if not isinstance(expr, Mapping) or "op" not in expr or not isinstance(expr.get("args"), list):
        raise FilterError(f"a CQL2 expression is an object with 'op' and 'args', got {expr!r}")
    op, args = str(expr["op"]).lower(), expr["args"]
    if op in ("and", "or", "not"):
        if not args or (op == "not" and len(args) != 1):
            raise FilterError(f"CQL2 {op!r} needs {'one argument' if op == 'not' else 'arguments'}")
        for arg in args:
            check_cql2(arg)
        return
    arity = {"in": 2, "between": 3, "isnull": 1, **dict.fromkeys(COMPARISONS, 2)}
    if op not in arity or len(args) != arity[op]:
        raise FilterError(
            f"CQL2 operator {expr['op']!r} with {len(args)} args is not supported by the emulator"
        )
    for arg in args:
        if isinstance(arg, Mapping):
            _operand(arg, {})
