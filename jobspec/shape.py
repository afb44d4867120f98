"""Job shapes (RFC 46): a jobspec's resources written on one line.

Why this exists: ``--resources-shape='node=2/slot/core=4'`` is how a Flux user
writes resources the per-task options cannot say. :func:`parse_shape` turns the
text into the RFC 14 ``resources`` list::

    node=2{x}/slot{task}/[core=4;gpu]     vertices: TYPE[=COUNT][{ITEMS}][/CHILDREN]
    [a;b]                                 several vertices at one level
    =4, =[4], =1-8, =1-8:2, =2+           a count, or a range (kept as RFC 14 text)
    {x}, {+key}, {-key}, {key:value}      items: x is exclusive; values are JSON-ish

A ``slot`` needs children; its first item is its label (``task`` when there is
one slot and no label). Errors are ValueError naming the position.
"""

from __future__ import annotations

import json
import re

__all__ = ["parse_shape"]

_TYPE = re.compile(r"[^={}\[\]/;\s\"']+")
_COUNT = re.compile(r"[1-9]\d*(?:-[1-9]\d*(?::[1-9]\d*[+*^]?)?|\+(?::[1-9]\d*[+*^]?)?"
                    r"|(?:,[1-9]\d*(?:-[1-9]\d*)?)+)?")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d*)?(?:[eE][-+]?\d+)?")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.slots = 0

    def fail(self, what: str) -> ValueError:
        return ValueError(f"{what} at position {self.pos} of '{self.text}'")

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip()
        return self.text[self.pos:self.pos + 1]

    def take(self, char: str) -> bool:
        if self.peek() == char:
            self.pos += 1
            return True
        return False

    def expect(self, char: str) -> None:
        if not self.take(char):
            found = self.peek()
            raise self.fail(f"expected '{char}', found " + (f"'{found}'" if found else "the end"))

    def parse(self) -> list:
        out = self.vertices()
        if self.peek():
            raise self.fail(f"unexpected '{self.peek()}'")
        return out

    def vertices(self) -> list:
        if not self.take("["):
            return [self.vertex()]
        out = [self.vertex()]
        while self.take(";"):
            out.append(self.vertex())
        self.expect("]")
        return out

    def name(self) -> str:
        self.skip()
        if self.peek() in ("'", '"'):
            return self.quoted()
        m = _TYPE.match(self.text, self.pos)
        if not m:
            raise self.fail("expected a resource type")
        self.pos = m.end()
        return m.group()

    def quoted(self) -> str:
        quote = self.text[self.pos]
        end = self.text.find(quote, self.pos + 1)
        if end < 0:
            raise self.fail(f"unclosed quote {quote}")
        value = self.text[self.pos + 1:end]
        self.pos = end + 1
        return value

    def vertex(self) -> dict:
        vtype = self.name()
        is_slot = vtype.lower() == "slot"
        vertex: dict = {"type": "slot" if is_slot else vtype, "count": 1}
        if self.take("="):
            vertex["count"] = self.count()
        if is_slot:
            self.slots += 1
            if self.peek() == "{":
                items = self.items()
                if not items or next(iter(items.values())) is not True:
                    raise self.fail("a slot's first item must be its label")
                label, *rest = items
                vertex["label"] = label
                vertex.update({k: items[k] for k in rest})
            elif self.slots > 1:
                raise self.fail("several slots need labels")
            else:
                vertex["label"] = "task"
            self.expect("/")
            vertex["with"] = self.vertices()
            return vertex
        if self.peek() == "{":
            vertex.update(self.items())
        if self.take("/"):
            vertex["with"] = self.vertices()
        return vertex

    def count(self) -> int | str:
        bracket = self.take("[")
        self.skip()
        m = _COUNT.match(self.text, self.pos)
        if not m:
            raise self.fail("expected a count (an integer >= 1 or a range)")
        self.pos = m.end()
        if bracket:
            self.expect("]")
        text = m.group()
        return int(text) if text.isdigit() else text

    def items(self) -> dict:
        self.expect("{")
        out: dict = {}
        if self.take("}"):
            return out
        while True:
            flag = True
            if self.peek() in "+-" and self.peek():
                flag = self.text[self.pos] == "+"
                self.pos += 1
            key = self.key()
            if self.take(":"):
                out[key] = self.value()
            else:
                out[key] = flag
            if self.take("}"):
                return out
            self.expect(",")

    def key(self) -> str:
        self.skip()
        if self.peek() in ("'", '"') and self.peek():
            return self.quoted()
        m = re.compile(r"[^:,{}+\-][^:,{}]*").match(self.text, self.pos)
        if not m:
            raise self.fail("expected a key")
        self.pos = m.end()
        key = m.group().strip()
        return "exclusive" if key == "x" else key

    def value(self):
        self.skip()
        if self.peek() == "{":
            return self.items()
        if self.peek() in ("'", '"') and self.peek():
            return self.quoted()
        if self.peek() == "[":
            end = self.text.find("]", self.pos)
            if end < 0:
                raise self.fail("unclosed '['")
            raw = self.text[self.pos:end + 1]
            self.pos = end + 1
            try:
                return json.loads(raw.replace("'", '"'))
            except ValueError:
                raise self.fail(f"invalid array {raw}") from None
        m = re.compile(r"[^,{}\[\]]+").match(self.text, self.pos)
        if not m:
            raise self.fail("expected a value")
        self.pos = m.end()
        raw = m.group().strip()
        words = {"true": True, "false": False, "null": None}
        if raw.lower() in words:
            return words[raw.lower()]
        if _NUMBER.fullmatch(raw):
            return json.loads(raw if not raw.endswith(".") else raw + "0")
        return raw


def parse_shape(text: str) -> list:
    """The RFC 14 resources list a shape stands for; ValueError if malformed."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty shape")
    return _Parser(text).parse()
