"""Finding runs by what they mean: typed filters and a small condition language, both compiled
to SQL over the store's tables (values always bound, never formatted in), so a project with many
thousand runs is filtered by SQLite and only the matching runs are read.

The language of ``--where`` (parsed here, never ``eval``)::

    expr    := and ("or" and)*
    and     := unary ("and" unary)*
    unary   := "not" unary | "(" expr ")" | compare
    compare := NAME OP VALUE          OP: = == != < <= > >=
    NAME    := words (spaces allowed, "DTree Accuracy") or `any text` in backquotes
    VALUE   := a number, 'text' or "text", or one bare word (text)

A name is the run's metric of that name (its last value for a series), else its param. A number
compares with numbers only, text with text only: ``loss < 0.5`` is false for a run without a
numeric loss.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from .errors import UsageError
from .status import TERMINAL, RunStatus

OPERATORS = ("<=", ">=", "!=", "==", "=", "<", ">")
_SQL_OP = {"=": "=", "==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_KEYWORDS = {"and", "or", "not"}
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_WORD = re.compile(r"[^\s()<>=!'\"`]+")


class QueryError(UsageError):
    """A ``--where`` expression that does not parse: one line naming the position."""

    def __init__(self, text: str, pos: int, message: str):
        super().__init__(f"--where: {message} at position {pos + 1}: {text!r}")
        self.pos = pos


# ------------------------------------------------------------------------ the language


@dataclass(frozen=True)
class Compare:
    name: str
    op: str
    value: float | str


@dataclass(frozen=True)
class Not:
    inner: Expr


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or"
    parts: tuple[Expr, ...]


Expr = Compare | Not | BoolOp


@dataclass(frozen=True)
class Token:
    kind: str  # word | number | string | op | lparen | rparen | quoted | end
    text: str
    pos: int
    value: Any = None


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "()":
            tokens.append(Token("lparen" if ch == "(" else "rparen", ch, i))
            i += 1
            continue
        op = next((o for o in OPERATORS if text.startswith(o, i)), None)
        if op is not None:
            tokens.append(Token("op", op, i))
            i += len(op)
            continue
        if ch in "'\"`":
            end = text.find(ch, i + 1)
            if end < 0:
                raise QueryError(text, i, f"unclosed {ch}")
            kind = "quoted" if ch == "`" else "string"
            tokens.append(Token(kind, text[i : end + 1], i, text[i + 1 : end]))
            i = end + 1
            continue
        if ch == "!":
            raise QueryError(text, i, "'!' must be '!='")
        number = _NUMBER.match(text, i)
        word = _WORD.match(text, i)
        assert word is not None  # every other character starts a word
        if number is not None and number.end() == word.end():
            tokens.append(Token("number", number.group(), i, float(number.group())))
        else:
            tokens.append(Token("word", word.group(), i))
        i = word.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def fail(self, message: str, tok: Token | None = None) -> QueryError:
        return QueryError(self.text, (tok or self.tok).pos, message)

    def keyword(self, word: str) -> bool:
        if self.tok.kind == "word" and self.tok.text.lower() == word:
            self.i += 1
            return True
        return False

    def parse(self) -> Expr:
        if self.tok.kind == "end":
            raise self.fail("empty condition")
        expr = self.expr()
        if self.tok.kind != "end":
            raise self.fail(f"unexpected {self.tok.text!r}")
        return expr

    def expr(self) -> Expr:
        parts = [self.conj()]
        while self.keyword("or"):
            parts.append(self.conj())
        return parts[0] if len(parts) == 1 else BoolOp("or", tuple(parts))

    def conj(self) -> Expr:
        parts = [self.unary()]
        while self.keyword("and"):
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else BoolOp("and", tuple(parts))

    def unary(self) -> Expr:
        if self.keyword("not"):
            return Not(self.unary())
        if self.tok.kind == "lparen":
            self.i += 1
            inner = self.expr()
            if self.tok.kind != "rparen":
                raise self.fail("expected ')'")
            self.i += 1
            return inner
        return self.compare()

    def compare(self) -> Compare:
        start = self.tok
        if start.kind == "quoted":
            name = str(start.value)
            self.i += 1
        else:
            words: list[str] = []
            while self.tok.kind in ("word", "number") and self.tok.text.lower() not in _KEYWORDS:
                words.append(self.tok.text)
                self.i += 1
            if not words:
                raise self.fail("expected a metric or param name")
            name = " ".join(words)
        if self.tok.kind != "op":
            raise self.fail(f"expected an operator ({' '.join(OPERATORS[::-1])}) after {name!r}")
        op = self.tok.text
        self.i += 1
        value_tok = self.tok
        if value_tok.kind == "number":
            value: float | str = float(value_tok.value)
        elif value_tok.kind == "string":
            value = str(value_tok.value)
        elif value_tok.kind == "word" and value_tok.text.lower() not in _KEYWORDS:
            value = value_tok.text
        else:
            raise self.fail(f"expected a value after {op!r}")
        self.i += 1
        return Compare(name, op, value)


def parse_where(text: str) -> Expr:
    return _Parser(text).parse()


# ------------------------------------------------------------------------ SQL


def value_sql(args: list[Any], name: str) -> str:
    """A run's value for ``name`` (JSON text): its metric's last value, else its param."""
    args += [name, name]
    return (
        "COALESCE((SELECT m.value FROM metrics AS m WHERE m.run_id = runs.id AND m.name = ?"
        " ORDER BY m.seq DESC LIMIT 1),"
        " (SELECT p.value FROM params AS p WHERE p.run_id = runs.id AND p.name = ?))"
    )


def number_sql(args: list[Any], name: str) -> str:
    """``name``'s value as a number, NULL where it is missing or not a number."""
    v = value_sql(args, name)
    # A JSON number's text is its value: CAST reads it, json_type says it is one.
    return f"(SELECT CASE WHEN json_type(v) IN ('integer','real') THEN CAST(v AS REAL) END" \
           f" FROM (SELECT {v} AS v))"


def expr_sql(expr: Expr, args: list[Any]) -> str:
    if isinstance(expr, Not):
        return f"NOT COALESCE({expr_sql(expr.inner, args)}, 0)"
    if isinstance(expr, BoolOp):
        joiner = f" {expr.op.upper()} "
        return "(" + joiner.join(f"COALESCE({expr_sql(p, args)}, 0)" for p in expr.parts) + ")"
    op = _SQL_OP[expr.op]
    if isinstance(expr.value, float):
        sql = f"{number_sql(args, expr.name)} {op} ?"
        args.append(expr.value)
    else:
        v = value_sql(args, expr.name)
        # The value's placeholder after the name's: args are bound in the order they appear.
        sql = (f"(SELECT json_type(v) = 'text' AND json_extract(v, '$') {op} x"
               f" FROM (SELECT {v} AS v, ? AS x))")
        args.append(expr.value)
    return f"({sql})"


# ------------------------------------------------------------------------ filters


@dataclass
class RunFilter:
    """What ``runs list``, ``runs best`` and ``runs prune`` select by (all must hold)."""

    statuses: list[RunStatus] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    scripts: list[str] = field(default_factory=list)
    tags: list[tuple[str, str | None]] = field(default_factory=list)  # None: has the tag
    since: float | None = None  # created at or after
    before: float | None = None  # created before
    where: Expr | None = None
    sweep: str | None = None
    terminal_only: bool = False

    def sql(self) -> tuple[str, list[Any]]:
        parts: list[str] = []
        args: list[Any] = []
        if self.statuses:
            parts.append(f"status IN ({','.join('?' * len(self.statuses))})")
            args += [s.value for s in self.statuses]
        if self.terminal_only:
            parts.append(f"status IN ({','.join('?' * len(TERMINAL))})")
            args += [s.value for s in TERMINAL]
        if self.targets:
            parts.append(f"target IN ({','.join('?' * len(self.targets))})")
            args += self.targets
        if self.scripts:
            # A pattern (GLOB) matching the script's path or its path's end: job.py, src/*.py
            parts.append("(" + " OR ".join("script GLOB ? OR script GLOB '*/' || ?"
                                           for _ in self.scripts) + ")")
            for script in self.scripts:
                args += [script, script]
        for name, value in self.tags:
            if value is None:
                parts.append("EXISTS (SELECT 1 FROM tags AS t WHERE t.run_id = runs.id"
                             " AND t.name = ?)")
                args.append(name)
            else:
                parts.append("EXISTS (SELECT 1 FROM tags AS t WHERE t.run_id = runs.id"
                             " AND t.name = ? AND t.value = ?)")
                args += [name, value]
        if self.since is not None:
            parts.append("created >= ?")
            args.append(self.since)
        if self.before is not None:
            parts.append("created < ?")
            args.append(self.before)
        if self.sweep is not None:
            parts.append("sweep = ?")
            args.append(self.sweep)
        if self.where is not None:
            parts.append(f"COALESCE({expr_sql(self.where, args)}, 0)")
        return " AND ".join(parts), args


def order_sql(sort: str | None) -> tuple[str, list[Any]]:
    """``METRIC`` (best first: descending) or ``METRIC:asc`` / ``METRIC:desc``; runs without a
    numeric value last, newest first among equals. None: newest first."""
    if not sort:
        return "created DESC", []
    name, direction = sort, "desc"
    head, sep, tail = sort.rpartition(":")
    if sep and tail.lower() in ("asc", "desc"):
        name, direction = head, tail.lower()
    if not name.strip():
        raise UsageError(f"--sort {sort!r}: name a metric or param (METRIC or METRIC:asc)")
    args: list[Any] = []
    return f"{number_sql(args, name.strip())} {direction.upper()} NULLS LAST, created DESC", args


def sort_name(sort: str) -> str:
    head, sep, tail = sort.rpartition(":")
    return head.strip() if sep and tail.lower() in ("asc", "desc") else sort.strip()


def parse_tag(text: str) -> tuple[str, str | None]:
    """``k=v`` (the tag k with value v) or ``k`` (any value) for filters."""
    name, sep, value = text.partition("=")
    if not name:
        raise UsageError(f"--tag {text!r}: expected NAME=VALUE or NAME")
    return name, (value if sep else None)


_SPAN = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_when(text: str, option: str, now: float | None = None) -> float:
    """A moment: an age (``90m``, ``12h``, ``3d``, ``2w``: that long ago) or a local date
    (``2024-05-01``, ``2024-05-01T12:30``, ``2024-05-01 12:30:00``)."""
    now = time.time() if now is None else now
    span = _SPAN.fullmatch(text.strip())
    if span:
        return now - float(span.group(1)) * _UNIT_S[span.group(2)]
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S",
                "%Y-%m-%d %H:%M:%S"):
        try:
            return time.mktime(time.strptime(text.strip(), fmt))
        except ValueError:
            continue
    raise UsageError(f"{option} {text!r}: expected an age (30m, 12h, 3d, 2w) or a date"
                     " (2024-05-01, 2024-05-01T12:30)")
