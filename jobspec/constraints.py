"""Job constraints: the RFC 35 query syntax, RFC 31 JSON, and matching nodes against it.

Why this exists: ``--requires="host:node[1-3] and not rank:0"`` on the command line
becomes the RFC 31 object in a jobspec's ``attributes.system.constraints``, which ingest
validates and the scheduler evaluates against every node it considers.

- :func:`parse_constraint` turns RFC 35 text into RFC 31 JSON the way ``flux submit
  --requires`` does: the default operator is ``properties``; ``host:``/``hosts:`` give
  ``hostlist`` and ``rank:`` gives ``ranks``; property values split at commas and a
  leading ``-`` in one of them becomes the RFC 31 ``^`` ("must not have"); property
  terms joined by *and* merge into one ``properties`` list (``a b`` and ``a&b`` give
  ``{"properties": ["a", "b"]}``); ``-term`` is ``not term``.
- :func:`validate_constraint` checks an RFC 31 object and names the bad path.
- :func:`compile_constraint` builds a predicate ``node -> bool`` once per constraint, for
  nodes with ``rank``, ``hostname`` and ``properties``.  As in Flux, a node's host name
  also counts as one of its properties.
- :func:`format_constraint` writes RFC 31 JSON back as RFC 35 text.

The lark parser is built on the first call of :func:`parse_constraint`; importing this
module does not import lark.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .hostlist import expand_hostlist
from .idset import decode_idset

__all__ = [
    "compile_constraint",
    "format_constraint",
    "parse_constraint",
    "validate_constraint",
]

# RFC 35 operator names accepted in query text -> RFC 31 operator.
OPERATORS: dict[str, str] = {
    "properties": "properties",
    "host": "hostlist",
    "hosts": "hostlist",
    "hostlist": "hostlist",
    "rank": "ranks",
    "ranks": "ranks",
}

_GRAMMAR = r"""
start: or_expr

?or_expr: and_expr (OR and_expr)*
?and_expr: not_expr (AND? not_expr)*
?not_expr: NOT not_expr     -> negate
         | atom
?atom: TERM
     | NEG TERM             -> neg
     | "(" or_expr ")"

NOT.3: /not(?=[\s()&|]|$)/
AND.3: /&&?|and(?=[\s()&|]|$)/
OR.3: /\|\|?|or(?=[\s()&|]|$)/
NEG.2: /-(?=[^\s()&|])/
TERM: /(?:[^\s()&|'"\-]|'[^']*'|"[^"]*")(?:[^\s()&|'"]|'[^']*'|"[^"]*")*/

%ignore /\s+/
"""

_parser: Any = None  # the lark parser, built on first use

_OPERATOR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_PIECES = re.compile(r"'([^']*)'|\"([^\"]*)\"|([^'\"]+)")
# Characters a property name may not contain (besides one leading "^" in RFC 31 JSON).
_BAD_PROPERTY_CHAR = re.compile(r"[!&'\"^`|()\s,]|[^ -~\u0080-\U0010ffff]")
_RANGE = re.compile(r"(\d+)-(\d+)")
_MAX_IDS = 1 << 20  # refuse hostlists and idsets of more names or ids than this
_MAX_DEPTH = 200  # refuse expressions nested deeper than this


class _TermError(Exception):
    """A problem with one term of the query, at a 0-based offset into the text."""

    def __init__(self, problem: str, offset: int) -> None:
        super().__init__(problem)
        self.problem = problem
        self.offset = offset


# --------------------------------------------------------------------------- parsing


def _get_parser() -> Any:
    global _parser
    if _parser is None:
        from lark import Lark

        _parser = Lark(_GRAMMAR, parser="lalr", lexer="basic", maybe_placeholders=False)
    return _parser


def parse_constraint(text: str) -> dict:
    """Parse RFC 35 constraint query ``text`` into an RFC 31 constraint object.

    ``"amd64"`` gives ``{"properties": ["amd64"]}``, ``"host:node[1-3] and not rank:0"``
    gives ``{"and": [{"hostlist": ["node[1-3]"]}, {"not": [{"ranks": ["0"]}]}]}``.

    Raises ValueError with one line naming the problem and its 1-based column, e.g.
    ``invalid constraint 'a|': unexpected end of input at column 3``.
    """
    if not isinstance(text, str):
        raise ValueError(f"invalid constraint {text!r}: not a string")
    if not text.strip():
        raise ValueError(f"invalid constraint {text!r}: empty constraint")
    from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

    try:
        tree = _get_parser().parse(text)
    except UnexpectedCharacters as exc:
        pos = exc.pos_in_stream
        char = text[pos] if pos < len(text) else ""
        if char in "'\"":
            problem = f"unterminated quote {char}"
        elif char == "-":
            problem = "'-' must be directly followed by a term"
            if text[pos + 1 : pos + 2] == "(":
                problem += " (use 'not' to negate an expression)"
        else:
            problem = f"unexpected {char!r}"
        raise _error(text, problem, pos) from None
    except UnexpectedToken as exc:
        tok = exc.token
        if tok.type == "$END":
            raise _error(text, "unexpected end of input", len(text)) from None
        raise _error(text, f"unexpected {str(tok)!r}", tok.start_pos) from None
    except UnexpectedInput as exc:  # UnexpectedEOF and anything else lark may add
        raise _error(text, "syntax error", getattr(exc, "pos_in_stream", None) or 0) from None
    try:
        return _build(tree.children[0], 0)
    except _TermError as exc:
        raise _error(text, exc.problem, exc.offset) from None


def _error(text: str, problem: str, offset: int) -> ValueError:
    return ValueError(f"invalid constraint {text!r}: {problem} at column {offset + 1}")


def _build(node: Any, depth: int) -> dict:
    """Turn the lark tree into simplified RFC 31 JSON."""
    if depth > _MAX_DEPTH:
        raise _TermError("expression nested too deeply", 0)
    if not hasattr(node, "data"):  # a TERM token
        return _term(str(node), node.start_pos)
    kind = node.data
    if kind == "neg":
        tok = node.children[1]
        return {"not": [_term(str(tok), tok.start_pos)]}
    if kind == "negate":
        return {"not": [_build(node.children[1], depth + 1)]}
    parts = [
        _build(c, depth + 1)
        for c in node.children
        if hasattr(c, "data") or c.type == "TERM"  # skip the AND / OR tokens
    ]
    if kind == "and_expr":
        return _simplify_and(parts)
    if kind == "or_expr":
        return _simplify_or(parts)
    raise AssertionError(f"unexpected parse tree node {kind!r}")  # pragma: no cover


def _simplify_and(parts: list[dict]) -> dict:
    """Flatten nested ``and``s and merge their ``properties`` terms into one list."""
    flat: list[dict] = []
    for part in parts:
        flat.extend(part["and"] if "and" in part else [part])
    out: list[dict] = []
    props: list[str] | None = None
    for part in flat:
        if "properties" in part:
            if props is None:
                props = []
                out.append({"properties": props})
            props.extend(p for p in part["properties"] if p not in props)
        else:
            out.append(part)
    return out[0] if len(out) == 1 else {"and": out}


def _simplify_or(parts: list[dict]) -> dict:
    flat: list[dict] = []
    for part in parts:
        flat.extend(part["or"] if "or" in part else [part])
    return flat[0] if len(flat) == 1 else {"or": flat}


def _term(raw: str, start: int) -> dict:
    """One ``operator:value`` term (``start`` is its offset in the query) -> RFC 31 JSON."""
    quote_at = min((i for i in (raw.find("'"), raw.find('"')) if i >= 0), default=len(raw))
    colon = raw.find(":", 0, quote_at)
    if colon >= 0:
        name = raw[:colon]
        if not _OPERATOR_NAME.match(name):
            raise _TermError(f"invalid constraint operator {name!r}", start)
        op = OPERATORS.get(name)
        if op is None:
            raise _TermError(f"unknown constraint operator {name!r}", start)
        rest_at = colon + 1
    else:
        name, op, rest_at = "", "properties", 0
    value = "".join(a or b or c for a, b, c in _PIECES.findall(raw[rest_at:]))
    at = start + rest_at
    if not value:
        raise _TermError(f"missing value after {name + ':'!r}" if name else "empty term", at)
    if op == "properties":
        props: list[str] = []
        for item in value.split(","):
            if not item:
                raise _TermError(f"empty property in {value!r}", at)
            if item[0] == "-":
                item = "^" + item[1:]
            problem = _property_problem(item)
            if problem:
                raise _TermError(problem, at)
            if item not in props:
                props.append(item)
        return {"properties": props}
    try:
        _check_value(op, value)
    except ValueError as exc:
        raise _TermError(str(exc), at) from None
    return {op: [value]}


# ------------------------------------------------------------------------ validation


def _property_problem(prop: str) -> str | None:
    """Why ``prop`` (an RFC 31 property value, maybe ``^``-negated) is bad, or None."""
    name = prop[1:] if prop.startswith("^") else prop
    if not name:
        return f"empty property name in {prop!r}"
    bad = _BAD_PROPERTY_CHAR.search(name)
    if bad is not None:
        return f"invalid character {bad.group()!r} in property {prop!r}"
    return None


def _check_size(kind: str, value: str) -> None:
    total = 0
    for lo, hi in _RANGE.findall(value):
        total += max(0, int(hi) - int(lo) + 1)
    if total > _MAX_IDS:
        raise ValueError(f"{kind} {value!r} is too large (more than {_MAX_IDS} entries)")


def _check_value(op: str, value: str) -> list:
    """Decode a ``hostlist`` or ``ranks`` value; ValueError if it is bad."""
    if op == "hostlist":
        _check_size("hostlist", value)
        hosts = expand_hostlist(value)
        if not hosts:
            raise ValueError(f"invalid hostlist {value!r}: no hosts")
        return hosts
    _check_size("idset", value)
    ids = decode_idset(value)
    if not ids:
        raise ValueError(f"invalid idset {value!r}: no ids")
    return ids


def validate_constraint(obj: object, path: str = "attributes.system.constraints") -> None:
    """Check that ``obj`` is a valid RFC 31 constraint object.

    ``{}`` (no constraint) is valid.  Raises ValueError with one line naming the path
    and the problem, e.g. ``attributes.system.constraints.and[1].properties[0]: invalid
    character '&' in property 'bar&'``.
    """
    _validate(obj, path, 0)


def _validate(obj: object, path: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ValueError(f"{path}: constraint nested too deeply")
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: constraint must be a JSON object, not {type(obj).__name__}")
    if not obj:
        return
    if len(obj) != 1:
        keys = ", ".join(sorted(map(repr, obj)))
        raise ValueError(f"{path}: constraint must have exactly one operator, got {keys}")
    ((op, values),) = obj.items()
    where = f"{path}.{op}"
    if op not in ("and", "or", "not", "properties", "hostlist", "ranks"):
        raise ValueError(f"{path}: unknown constraint operator {op!r}")
    if not isinstance(values, list):
        raise ValueError(f"{where}: {op} value must be an array")
    for i, value in enumerate(values):
        here = f"{where}[{i}]"
        if op in ("and", "or", "not"):
            _validate(value, here, depth + 1)
            continue
        if not isinstance(value, str):
            raise ValueError(f"{here}: {op} value must be a string, not {type(value).__name__}")
        if op == "properties":
            problem = _property_problem(value)
            if problem:
                raise ValueError(f"{here}: {problem}")
        else:
            try:
                _check_value(op, value)
            except ValueError as exc:
                raise ValueError(f"{here}: {exc}") from None


# ------------------------------------------------------------------------ evaluation

Matcher = Callable[[Any], bool]


def _true(node: Any) -> bool:
    return True


def _false(node: Any) -> bool:
    return False


def compile_constraint(obj: dict | None, *, validate: bool = True,
                       host_is_property: bool = True, empty_or_matches: bool = True) -> Matcher:
    """Validate RFC 31 ``obj`` and return a fast predicate ``match(node) -> bool``.

    ``node`` needs ``rank`` (int), ``hostname`` (str) and ``properties`` (a container of
    str: list, set or dict keys; a set or dict is faster for long lists).  ``properties``
    requires every listed property (``^name``: must not have it; the host name counts as
    a property); ``hostlist`` and ``ranks`` match a node named in any of their values;
    ``and``/``or`` of no values match everything and ``not`` of no values matches
    nothing, as RFC 31 says; ``not`` of several values negates their ``and``.  ``None``
    or ``{}`` match every node.

    The graph scheduler evaluates constraints against resource-graph vertices the way
    Fluxion does, which differs in two corners, hence the keywords:
    ``host_is_property=False`` (a vertex's name is not one of its properties) and
    ``empty_or_matches=False`` (an ``or`` of no values matches nothing).
    ``validate=False`` skips :func:`validate_constraint` for an object the caller has
    already checked with rules of its own (Fluxion's jobspec parser accepts some
    values, such as properties with commas, that RFC 35 text cannot produce).

    Raises ValueError (see :func:`validate_constraint`) if ``obj`` is not valid.
    """
    if obj is None:
        return _true
    if validate:
        _validate(obj, "constraints", 0)
    return _compile(obj, host_is_property, empty_or_matches)


def _compile(obj: dict, host_is_property: bool = True, empty_or_matches: bool = True) -> Matcher:
    if not obj:
        return _true
    ((op, values),) = obj.items()
    if op == "properties":
        return _compile_properties(values, host_is_property)
    if op == "hostlist":
        hosts = frozenset(h for v in values for h in expand_hostlist(v))
        return lambda node: node.hostname in hosts
    if op == "ranks":
        ranks = frozenset(r for v in values for r in decode_idset(v))
        return lambda node: node.rank in ranks
    subs = [_compile(v, host_is_property, empty_or_matches) for v in values]
    if op == "not":
        if not subs:
            return _false
        inner = subs[0] if len(subs) == 1 else _all_of(subs)
        return lambda node: not inner(node)
    if not subs:  # empty "and" matches everything, so does an empty "or" (RFC 31)
        return _true if op == "and" or empty_or_matches else _false
    if len(subs) == 1:
        return subs[0]
    return _all_of(subs) if op == "and" else _any_of(subs)


def _all_of(subs: list[Matcher]) -> Matcher:
    if len(subs) == 2:
        a, b = subs
        return lambda node: a(node) and b(node)
    funcs = tuple(subs)

    def match(node: Any) -> bool:
        for f in funcs:
            if not f(node):
                return False
        return True

    return match


def _any_of(subs: list[Matcher]) -> Matcher:
    if len(subs) == 2:
        a, b = subs
        return lambda node: a(node) or b(node)
    funcs = tuple(subs)

    def match(node: Any) -> bool:
        for f in funcs:
            if f(node):
                return True
        return False

    return match


def _compile_properties(values: list[str], host_is_property: bool = True) -> Matcher:
    need = tuple(dict.fromkeys(v for v in values if not v.startswith("^")))
    deny = tuple(dict.fromkeys(v[1:] for v in values if v.startswith("^")))
    if not need and not deny:
        return _true
    if not host_is_property:
        return _compile_own_properties(need, deny)
    if len(need) == 1 and not deny:
        p = need[0]
        return lambda node: p in node.properties or p == node.hostname
    if len(deny) == 1 and not need:
        q = deny[0]
        return lambda node: not (q in node.properties or q == node.hostname)

    def match(node: Any) -> bool:
        props = node.properties
        host = node.hostname
        for p in need:
            if p not in props and p != host:
                return False
        for p in deny:
            if p in props or p == host:
                return False
        return True

    return match


def _compile_own_properties(need: tuple[str, ...], deny: tuple[str, ...]) -> Matcher:
    """``properties`` looking at the node's properties only (not its host name)."""
    if len(need) == 1 and not deny:
        p = need[0]
        return lambda node: p in node.properties

    def match(node: Any) -> bool:
        props = node.properties
        for p in need:
            if p not in props:
                return False
        for p in deny:
            if p in props:
                return False
        return True

    return match


# ------------------------------------------------------------------------ formatting

_SAFE_VALUE = re.compile(r"[^\s()&|'\"]+\Z")
_KEYWORDS = {"and", "or", "not"}


def _quote(value: str) -> str:
    if _SAFE_VALUE.match(value):
        return value
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    # both quotes: adjacent quoted pieces make one term ('a"b' "'" 'c' reads a"b'c)
    return "\"'\"".join(f"'{piece}'" for piece in value.split("'"))


def format_constraint(obj: dict) -> str:
    """Write RFC 31 constraint ``obj`` as RFC 35 text that parses back to the same meaning.

    ``{"and": [{"properties": ["a", "^b"]}, {"not": [{"ranks": ["0"]}]}]}`` gives
    ``"a,^b and -rank:0"``; the output of :func:`parse_constraint` round-trips exactly.
    ``{}`` gives ``""``.  Raises ValueError for an invalid object and for an empty
    ``and``/``or``/``not``, which RFC 35 cannot express.
    """
    validate_constraint(obj, "constraints")
    return _format(obj) if obj else ""


def _format(obj: dict) -> str:
    ((op, values),) = obj.items()
    if op in ("and", "or", "not") and not values:
        raise ValueError(f"cannot write an empty {op!r} in constraint query syntax")
    if op == "properties":
        if not values:
            raise ValueError("cannot write an empty 'properties' in constraint query syntax")
        text = ",".join(values)
        if text in _KEYWORDS or ":" in text or text.startswith("-"):
            return "properties:" + text
        return text
    if op in ("hostlist", "ranks"):
        name = "host" if op == "hostlist" else "rank"
        terms = [f"{name}:{_quote(v)}" for v in values]
        if not terms:
            raise ValueError(f"cannot write an empty {op!r} in constraint query syntax")
        return terms[0] if len(terms) == 1 else "(" + " or ".join(terms) + ")"
    if op == "not":
        inner = values[0] if len(values) == 1 else {"and": values}
        text = _format(inner)
        ((iop, ivals),) = inner.items()
        if iop == "properties" or (iop in ("hostlist", "ranks") and len(ivals) == 1):
            return "-" + text  # one term
        return f"not ({text})"
    parts = []
    for value in values:
        text = _format(value)
        if op == "and" and "or" in value:
            text = f"({text})"
        parts.append(text)
    if op == "or":
        return " or ".join(parts)
    return " and ".join(parts)
