"""Column-wise rows of the change table: events are appended straight into per-column lists
(no row dicts), and a batch becomes one Arrow table with the types of :mod:`changelake_lake.schema`.
"""

from __future__ import annotations

import base64
import decimal
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from changelake_lake import schema

_Q9 = Decimal(1).scaleb(-schema.NUMBER_SCALE)
_FIT_CONTEXT = decimal.Context(prec=schema.NUMBER_PRECISION, traps=[decimal.InvalidOperation])
_MAX_INT_DIGITS = schema.NUMBER_PRECISION - schema.NUMBER_SCALE

SYSTEM_NAMES = tuple(name for name, _ in schema.SYSTEM_COLUMNS)

Cell = tuple[str, Any]


@dataclass(slots=True)
class PreparedRow:
    """One row: its table, event time, system values (schema order) and attribute cells."""

    table: str
    event_time_us: int
    system: tuple[Any, ...]
    cells: list[Cell]
    number_text_values: int


def number_fits(value: Decimal) -> bool:
    """Whether ``value`` is exactly representable as decimal(38, 9) (else: the text column)."""
    if value.is_zero():
        return True
    if value.adjusted() >= _MAX_INT_DIGITS:
        return False
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -schema.NUMBER_SCALE:
        return True
    try:
        return value.quantize(_Q9, context=_FIT_CONTEXT) == value
    except decimal.InvalidOperation:
        return False


def plain(value: Any) -> Any:
    """JSON-ready form of a decoded value; numbers are raw fragments so they stay exact."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is Decimal:
        return orjson.Fragment(str(value))
    if kind is dict:
        return {k: plain(v) for k, v in value.items()}
    if kind is list:
        return [plain(v) for v in value]
    if kind is bytes:
        return base64.b64encode(value).decode("ascii")
    if kind is set or kind is frozenset:
        return [plain(v) for v in sorted(value)]
    raise TypeError(f"not a decoded DynamoDB value: {kind.__name__}")


def image_json(image: Mapping[str, Any] | None) -> str | None:
    """Same text as :func:`changelake.ddb_json.image_to_json`, rendered by orjson in one call."""
    if image is None:
        return None
    return orjson.dumps({k: plain(v) for k, v in image.items()}).decode()


def value_json(value: Any) -> str:
    """Same text as :func:`changelake.ddb_json.value_to_json`."""
    return orjson.dumps(plain(value)).decode()


class ChangeColumns:
    """Rows of one batch, held column by column; ``to_table`` makes the Arrow table."""

    def __init__(self) -> None:
        self.rows = 0
        # column -> (row indexes, values): sparse, padded with nulls only in to_table
        self.attributes: dict[str, tuple[list[int], list[Any]]] = {}
        self.number_text_values = 0
        self.collisions = 0
        self._system_rows: list[tuple[Any, ...]] = []

    def add(self, row: PreparedRow) -> None:
        """Add one prepared row."""
        self._system_rows.append(row.system)
        index = self.rows
        attributes = self.attributes
        for column, value in row.cells:
            entry = attributes.get(column)
            if entry is None:
                attributes[column] = ([index], [value])
            elif entry[0][-1] == index:
                # Two attributes of this item map to one column (e.g. "a_b" and a.b): the
                # first keeps it; the other stays exact in the image. Counted, never an error.
                self.collisions += 1
            else:
                entry[0].append(index)
                entry[1].append(value)
        self.number_text_values += row.number_text_values
        self.rows = index + 1

    def to_table(self) -> pa.Table:
        """The batch as an Arrow table: system columns, then attribute columns by name."""
        n = self.rows
        arrays: list[pa.Array] = []
        fields: list[pa.Field] = []
        system = list(zip(*self._system_rows, strict=True)) or [() for _ in SYSTEM_NAMES]
        for field, column_values in zip(schema.SYSTEM_SCHEMA, system, strict=True):
            arrays.append(pa.array(column_values, type=field.type))
            fields.append(field)
        for column in sorted(self.attributes):
            indexes, present = self.attributes[column]
            values: list[Any]
            if len(indexes) == n:
                values = present
            else:
                values = [None] * n
                for i, value in zip(indexes, present, strict=True):
                    values[i] = value
            arrow_type = schema.arrow_type_for_column(column)
            if arrow_type == schema.NUMBER_TYPE:
                array = pc.cast(pa.array(values, type=pa.string()), arrow_type)
            else:
                array = pa.array(values, type=arrow_type)
            arrays.append(array)
            fields.append(pa.field(column, arrow_type, metadata=schema.path_metadata(column)))
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
