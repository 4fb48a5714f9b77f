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

from ._records import dataclass, field
from .errors import UsageError
from .status import TERMINAL, RunStatus

TYPE_CHECKING = False  # typing and dataclasses cost ~5 ms of every 'runs list'
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .store import RunRecord, RunStore

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
    """A run's value for ``name`` (JSON text): its metric's last value, else its param (the
    store's ``run_values``, kept so by triggers)."""
    args.append(name)
    return "(SELECT v.value FROM run_values AS v WHERE v.run_id = runs.id AND v.name = ?)"


def number_sql(args: list[Any], name: str) -> str:
    """``name``'s value as a number, NULL where it is missing or not a number."""
    args.append(name)
    return "(SELECT v.num FROM run_values AS v WHERE v.run_id = runs.id AND v.name = ?)"


def expr_sql(expr: Expr, args: list[Any], broad: Callable[[Compare], bool] | None = None) -> str:
    """A condition that is never NULL. A comparison matching few runs is the set of them, read
    from the index on (name, value): it costs what it matches. One that ``broad`` says matches
    many is a lookup per run instead, which finds the newest matches after a few runs (as a
    set, all of them would be gathered first)."""
    if isinstance(expr, Not):
        return f"NOT {expr_sql(expr.inner, args, broad)}"
    if isinstance(expr, BoolOp):
        parts = list(expr.parts)
        if broad is not None and expr.op == "and":  # the narrow sets first: they decide soonest
            parts.sort(key=lambda p: isinstance(p, Compare) and broad(p))
        joiner = f" {expr.op.upper()} "
        return "(" + joiner.join(expr_sql(p, args, broad) for p in parts) + ")"
    op = _SQL_OP[expr.op]
    column = "num" if isinstance(expr.value, float) else "txt"
    args += [expr.name, expr.value]
    if broad is not None and broad(expr):
        return (f"EXISTS (SELECT 1 FROM run_values AS v WHERE v.run_id = runs.id"
                f" AND v.name = ? AND v.{column} {op} ?)")
    return (f"(runs.id IN (SELECT v.run_id FROM run_values AS v WHERE v.name = ?"
            f" AND v.{column} {op} ?))")


def compare_parts(expr: Compare) -> tuple[str, str, str, float | str]:
    """(name, column of run_values, SQL operator, value) of a comparison."""
    column = "num" if isinstance(expr.value, float) else "txt"
    return expr.name, column, _SQL_OP[expr.op], expr.value


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

    def sql(self, broad: Callable[[Compare], bool] | None = None) -> tuple[str, list[Any]]:
        """The condition and its arguments; ``broad`` (see ``expr_sql``) picks how each
        comparison of ``where`` is read."""
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
            parts.append(expr_sql(self.where, args, broad))
        return " AND ".join(parts), args


def select_runs(store: RunStore, run_filter: RunFilter, sort: str | None = None,
                limit: int | None = None, oldest_first: bool = False) -> list[RunRecord]:
    """The runs ``run_filter`` keeps, newest first (``oldest_first``: oldest), or best first
    by ``sort`` (``METRIC``, ``METRIC:asc``), at most ``limit``, with their metrics."""
    where, args = run_filter.sql(store.broad_test(limit))
    if not sort:
        return store.select(where, args, "created ASC" if oldest_first else "created DESC",
                            limit)
    name, descending = parse_sort(sort)
    return store.select_sorted(where, args, name, descending, limit)


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


def parse_sort(sort: str) -> tuple[str, bool]:
    """``METRIC`` / ``METRIC:desc`` (best first: highest) or ``METRIC:asc``, as (name,
    descending), for ``RunStore.select_sorted``."""
    name, descending = sort, True
    head, sep, tail = sort.rpartition(":")
    if sep and tail.lower() in ("asc", "desc"):
        name, descending = head, tail.lower() == "desc"
    if not name.strip():
        raise UsageError(f"--sort {sort!r}: name a metric or param (METRIC or METRIC:asc)")
    return name.strip(), descending


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
