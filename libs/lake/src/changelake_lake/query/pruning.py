"""Partition pruning: which (dt, hour) partitions a query's WHERE clause can possibly need.

Only predicates that are top-level AND terms of the WHERE of the SELECT whose FROM/JOIN names
the table are used, and only comparisons of a partition column (or ``event_time``) with a
literal: ``=``, ``<>``, ``<``, ``<=``, ``>``, ``>=``, ``IN``, ``BETWEEN``, and ORs of ANDs of
those (the snapshot form of ``<table>_current`` selects partitions so, ADR 0035). Anything else
keeps the partition (pruning may read too much, never too little).

``event_time`` predicates prune too because the lake layout puts each change in the partition of
its event time (``changelake_lake.layout``): a partition covering ``[start, end)`` cannot hold a row
with ``event_time >= end``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlglot import exp

EVENT_TIME = "event_time"
_OPS: dict[type[exp.Expr], str] = {
    exp.EQ: "=",
    exp.NEQ: "<>",
    exp.LT: "<",
    exp.LTE: "<=",
    exp.GT: ">",
    exp.GTE: ">=",
}
_FLIP = {"=": "=", "<>": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "<>": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass(frozen=True, slots=True)
class Predicate:
    """``column <op> value`` (or ``column IN values``): str for partition columns, else datetime.

    ``op == "or"``: a disjunction, each alternative a conjunction of predicates.
    """

    column: str
    op: str
    values: tuple[str | datetime, ...]
    alternatives: tuple[tuple[Predicate, ...], ...] = ()


def predicates_for(table: exp.Table, columns: Sequence[str]) -> list[Predicate]:
    """Literal comparisons on ``columns`` that restrict rows read from ``table``."""
    select = _owning_select(table)
    if select is None:
        return []
    where = select.args.get("where")
    if where is None:
        return []
    names = {table.alias_or_name.lower(), table.name.lower()}
    single_source = not select.args.get("joins")
    wanted = {c.lower() for c in columns}
    found: list[Predicate] = []
    for term in _conjuncts(where.this):
        found.extend(_match(term, names, single_source, wanted))
    return found


def _owning_select(table: exp.Table) -> exp.Select | None:
    parent = table.parent
    if isinstance(parent, exp.From | exp.Join) and isinstance(parent.parent, exp.Select):
        return parent.parent
    return None


def _conjuncts(node: exp.Expr) -> list[exp.Expr]:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        return _conjuncts(node.this) + _conjuncts(node.expression)
    return [node]


def _column(node: exp.Expr, names: set[str], single: bool, wanted: set[str]) -> str | None:
    if not isinstance(node, exp.Column):
        return None
    name = node.name.lower()
    if name not in wanted:
        return None
    qualifier = node.table.lower()
    if qualifier and qualifier not in names:
        return None
    if not qualifier and not single:
        return None  # ambiguous without a qualifier when several sources are joined
    return name


def _literal(node: exp.Expr, column: str) -> str | datetime | None:
    if column == EVENT_TIME:
        if (
            isinstance(node, exp.Cast)
            and isinstance(node.this, exp.Literal)
            and node.this.is_string
            and node.to.is_type(*exp.DataType.TEMPORAL_TYPES)
        ):
            try:
                moment = datetime.fromisoformat(node.this.this.replace("T", " "))
            except ValueError:
                return None
            return moment.replace(tzinfo=None) if moment.tzinfo is None else None
        return None
    if isinstance(node, exp.Literal) and node.is_string:
        return str(node.this)
    return None


def _disjuncts(node: exp.Expr) -> list[exp.Expr]:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Or):
        return _disjuncts(node.this) + _disjuncts(node.expression)
    return [node]


def _match(term: exp.Expr, names: set[str], single: bool, wanted: set[str]) -> list[Predicate]:
    if isinstance(term, exp.Paren):
        return _match(term.this, names, single, wanted)
    if isinstance(term, exp.Or):
        alternatives: list[tuple[Predicate, ...]] = []
        for branch in _disjuncts(term):
            found = [p for t in _conjuncts(branch) for p in _match(t, names, single, wanted)]
            if not found:
                return []  # an unrestricted alternative: the OR restricts nothing
            alternatives.append(tuple(found))
        return [Predicate("", "or", (), tuple(alternatives))]
    if type(term) in _OPS:
        op = _OPS[type(term)]
        left, right = term.this, term.expression
        col = _column(left, names, single, wanted)
        if col is None:
            col, op, left, right = _column(right, names, single, wanted), _FLIP[op], right, left
        if col is None:
            return []
        value = _literal(right, col)
        return [] if value is None else [Predicate(col, op, (value,))]
    if isinstance(term, exp.Between):
        col = _column(term.this, names, single, wanted)
        if col is None:
            return []
        low, high = _literal(term.args["low"], col), _literal(term.args["high"], col)
        if low is None or high is None:
            return []
        return [Predicate(col, ">=", (low,)), Predicate(col, "<=", (high,))]
    if isinstance(term, exp.In) and not term.args.get("query"):
        col = _column(term.this, names, single, wanted)
        if col is None:
            return []
        values = [_literal(v, col) for v in term.expressions]
        if not values or any(v is None for v in values):
            return []
        return [Predicate(col, "in", tuple(v for v in values if v is not None))]
    return []


def partition_matches(
    keys: Sequence[str], values: Sequence[str], predicates: Sequence[Predicate]
) -> bool:
    """True unless some predicate proves the partition holds no matching row."""
    by_key = dict(zip((k.lower() for k in keys), values, strict=True))
    span = _span(by_key)
    for pred in predicates:
        if pred.op == "or":
            if not any(partition_matches(keys, values, alt) for alt in pred.alternatives):
                return False
            continue
        if pred.column == EVENT_TIME:
            if span is not None and not _time_may_match(span, pred):
                return False
            continue
        have = by_key.get(pred.column)
        if have is None or not all(isinstance(v, str) for v in pred.values):
            continue
        if pred.op == "in":
            if have not in pred.values:
                return False
        elif not _COMPARE[pred.op](have, pred.values[0]):
            return False
    return True


def _span(by_key: dict[str, str]) -> tuple[datetime, datetime] | None:
    dt, hour = by_key.get("dt"), by_key.get("hour")
    if dt is None or hour is None:
        return None
    try:
        start = datetime.fromisoformat(f"{dt}T{int(hour):02d}:00:00")
    except ValueError:
        return None
    return start, start + timedelta(hours=1)


def _time_may_match(span: tuple[datetime, datetime], pred: Predicate) -> bool:
    start, end = span
    for value in pred.values:
        if not isinstance(value, datetime):
            return True
        if pred.op in ("=", "in") and start <= value < end:
            return True
        if pred.op == "<>":
            return True
        if pred.op in (">", ">=") and end > value:
            return True
        if pred.op == "<" and start < value:
            return True
        if pred.op == "<=" and start <= value:
            return True
    return False
