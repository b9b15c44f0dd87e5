"""Strict DynamoDB-JSON codec, both ways, with no AWS SDK.

Decoding (`deserialize_*`) turns DynamoDB JSON (``{"S": "x"}``, ``{"N": "1.5"}`` …) into plain
Python values:

==========  =====================================================
type key    Python value
==========  =====================================================
S           ``str``
N           ``decimal.Decimal`` (exact; ≤38 significant digits, never NaN/Infinity)
B           ``bytes`` (strict base64)
BOOL        ``bool``
NULL        ``None`` (the value must be ``true``)
M           ``dict[str, value]``
L           ``list[value]``
SS/NS/BS    ``set`` of str / Decimal / bytes (members kept, duplicates rejected)
==========  =====================================================

Every attribute value must be an object with exactly one known type key, or decoding raises
:class:`DdbJsonError` carrying the JSON path of the bad value. Nothing is coerced silently.
Top-level attribute names must be non-empty; nesting is bounded by :data:`MAX_DEPTH`.
See docs/adr/0002-strict-dynamodb-json-codec.md for the choices.

Encoding (`serialize_*`) is the inverse and round-trips: ``deserialize(serialize(v)) == v``.

:func:`image_to_json` renders a decoded image as plain JSON text — numbers exact, sets as
sorted arrays, binary as base64 — the format of the ``new_image``/``old_image`` columns.
"""

from __future__ import annotations

import base64
import binascii
import decimal
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson

# DynamoDB numbers: up to 38 significant digits, magnitude 1E-130 .. 9.99…E+125 (and zero).
# The context mirrors boto3's; parsing itself is exact and checks the limits explicitly, because
# the context would also reject exact values DynamoDB accepts (e.g. 38 digits near 1E-130, or
# a 39+ character integer whose extra digits are trailing zeros).
DDB_CONTEXT = decimal.Context(
    prec=38,
    rounding=decimal.ROUND_HALF_EVEN,
    Emin=-128,
    Emax=126,
    traps=[decimal.Clamped, decimal.Overflow, decimal.Inexact, decimal.Rounded, decimal.Underflow],
)

MAX_DIGITS = 38
MIN_ADJUSTED_EXPONENT = -130
MAX_ADJUSTED_EXPONENT = 125
# Longest N text accepted: 38 digits plus generous room for sign, point, zeros and exponent.
_MAX_NUMBER_TEXT = 400
# DynamoDB documents 32 levels of nesting; allow twice that so an off-by-one in how levels
# are counted can never reject a real item.
MAX_DEPTH = 64

# A DynamoDB number as it appears on the wire: optional '-', ASCII digits with an optional
# fraction, optional exponent. DynamoDB itself emits normalized numbers ("12", "-0.5"); the
# looser forms '5.', '.5' and '1e5' are still accepted because clients may write them and an
# exact value is never at risk; a leading '+', whitespace, '_' and non-ASCII digits are not
# (Python's Decimal would silently take all of those).
_NUMBER_RE = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")

TYPE_KEYS = frozenset({"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"})

Value = Any
"""A decoded attribute value (see the module table)."""


class DdbJsonError(ValueError):
    """A DynamoDB-JSON value that does not follow the format; ``path`` points at it."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def parse_number(text: object, path: str = "$") -> Decimal:
    """Parse a DynamoDB ``N`` string exactly; reject NaN, Infinity, junk and >38 digits."""
    if not isinstance(text, str):
        raise DdbJsonError(path, f"N must be a string, got {type(text).__name__}")
    if len(text) > _MAX_NUMBER_TEXT or not _NUMBER_RE.match(text):
        raise DdbJsonError(path, f"malformed number {text[:40]!r}")
    try:
        value = Decimal(text)  # exact: construction from a string never rounds
    except (decimal.DecimalException, ValueError, OverflowError) as exc:
        raise DdbJsonError(path, f"number {text[:40]!r} out of DynamoDB range: {exc!r}") from exc
    if value.is_zero():
        return value
    digits = "".join(map(str, value.as_tuple().digits)).strip("0")
    if len(digits) > MAX_DIGITS:
        raise DdbJsonError(
            path,
            f"number {text[:40]!r} out of DynamoDB range: {len(digits)} significant digits"
            f" (max {MAX_DIGITS})",
        )
    if not MIN_ADJUSTED_EXPONENT <= value.adjusted() <= MAX_ADJUSTED_EXPONENT:
        raise DdbJsonError(
            path,
            f"number {text[:40]!r} out of DynamoDB range: magnitude must be within"
            f" 1E{MIN_ADJUSTED_EXPONENT} .. 9.99…E+{MAX_ADJUSTED_EXPONENT}",
        )
    return value


def _b64(text: object, path: str) -> bytes:
    if not isinstance(text, str):
        raise DdbJsonError(path, f"B must be a base64 string, got {type(text).__name__}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DdbJsonError(path, f"invalid base64: {exc}") from exc


def deserialize_value(av: object, path: str = "$") -> Value:
    """Decode one DynamoDB-JSON attribute value; raise :class:`DdbJsonError` on any defect."""
    return _decode(av, path, 0)


def _decode(av: object, path: str, depth: int) -> Value:
    if depth > MAX_DEPTH:
        # DynamoDB nests at most 32 levels; the bound also keeps hostile input from
        # exhausting the interpreter's recursion limit (a RecursionError is not a value).
        raise DdbJsonError(path, f"nested deeper than {MAX_DEPTH} levels")
    if not isinstance(av, dict):
        raise DdbJsonError(path, f"attribute value must be an object, got {type(av).__name__}")
    if len(av) != 1:
        keys = sorted(av)
        if not keys:
            raise DdbJsonError(path, "attribute value has no type key")
        raise DdbJsonError(path, f"attribute value must have exactly one type key, got {keys}")
    ((tag, raw),) = av.items()
    if tag == "S":
        if not isinstance(raw, str):
            raise DdbJsonError(path, f"S must be a string, got {type(raw).__name__}")
        return raw
    if tag == "N":
        return parse_number(raw, path)
    if tag == "BOOL":
        if not isinstance(raw, bool):
            raise DdbJsonError(path, f"BOOL must be true or false, got {raw!r:.40}")
        return raw
    if tag == "NULL":
        if raw is not True:
            raise DdbJsonError(path, f"NULL must be true, got {raw!r:.40}")
        return None
    if tag == "M":
        if not isinstance(raw, dict):
            raise DdbJsonError(path, f"M must be an object, got {type(raw).__name__}")
        return {_check_name(k, path): _decode(v, f"{path}.{k}", depth + 1) for k, v in raw.items()}
    if tag == "L":
        if not isinstance(raw, list):
            raise DdbJsonError(path, f"L must be an array, got {type(raw).__name__}")
        return [_decode(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(raw)]
    if tag == "B":
        return _b64(raw, path)
    if tag in ("SS", "NS", "BS"):
        return _deserialize_set(tag, raw, path)
    raise DdbJsonError(path, f"unknown type key {tag!r}")


def _check_name(name: object, path: str) -> str:
    if not isinstance(name, str):  # pragma: no cover - JSON object keys are always strings
        raise DdbJsonError(path, "attribute name must be a string")
    return name


def _deserialize_set(tag: str, raw: object, path: str) -> set[Any]:
    if not isinstance(raw, list):
        raise DdbJsonError(path, f"{tag} must be an array, got {type(raw).__name__}")
    if not raw:
        raise DdbJsonError(path, f"{tag} must not be empty")
    members: set[Any] = set()
    for i, item in enumerate(raw):
        member_path = f"{path}[{i}]"
        if tag == "SS":
            if not isinstance(item, str):
                raise DdbJsonError(member_path, "SS member must be a string")
            member: Any = item
        elif tag == "NS":
            member = parse_number(item, member_path)
        else:
            member = _b64(item, member_path)
        if member in members:
            raise DdbJsonError(member_path, f"duplicate member in {tag}")
        members.add(member)
    return members


def _check_top_level_name(name: object, path: str) -> str:
    # DynamoDB requires attribute names of at least one character. Keys of nested maps are
    # left alone: DynamoDB's rule there is not documented as clearly, and rejecting a record
    # DynamoDB itself emitted would quarantine a real change (see docs/adr/0002).
    name = _check_name(name, path)
    if not name:
        raise DdbJsonError(path, "empty attribute name")
    return name


def deserialize_image(image: object, path: str = "$") -> dict[str, Value]:
    """Decode an item image (a map of attribute name → attribute value); names must be non-empty."""
    if not isinstance(image, dict):
        raise DdbJsonError(path, f"image must be an object, got {type(image).__name__}")
    return {
        _check_top_level_name(k, path): deserialize_value(v, f"{path}.{k}")
        for k, v in image.items()
    }


def _format_number(value: Decimal) -> str:
    return str(value)


def serialize_value(value: Value, path: str = "$") -> dict[str, Any]:
    """Encode a plain Python value as DynamoDB JSON (inverse of :func:`deserialize_value`)."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, int):
        try:
            text = str(value)
        except ValueError as exc:  # beyond Python's int→str digit limit: far past 38 digits
            raise DdbJsonError(path, "number out of DynamoDB range") from exc
        return {"N": _format_number(parse_number(text, path))}
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise DdbJsonError(path, f"number {value} is not finite")
        return {"N": _format_number(parse_number(str(value), path))}
    if isinstance(value, float):
        raise DdbJsonError(path, "floats are not exact: use Decimal")
    if isinstance(value, bytes | bytearray | memoryview):
        return {"B": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Mapping):
        return {"M": {str(k): serialize_value(v, f"{path}.{k}") for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [serialize_value(v, f"{path}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, set | frozenset):
        return _serialize_set(value, path)
    raise DdbJsonError(path, f"cannot encode {type(value).__name__}")


def _serialize_set(value: set[Any] | frozenset[Any], path: str) -> dict[str, Any]:
    if not value:
        raise DdbJsonError(path, "DynamoDB sets cannot be empty")
    if all(isinstance(v, str) for v in value):
        return {"SS": sorted(value)}
    if all(isinstance(v, int | Decimal) and not isinstance(v, bool) for v in value):
        return {"NS": sorted(_format_number(parse_number(str(v), path)) for v in value)}
    if all(isinstance(v, bytes | bytearray) for v in value):
        return {"BS": sorted(base64.b64encode(bytes(v)).decode("ascii") for v in value)}
    raise DdbJsonError(path, "set members must all be strings, numbers or binary")


def serialize_image(item: Mapping[str, Value]) -> dict[str, dict[str, Any]]:
    """Encode a whole item as a DynamoDB-JSON image (attribute names must be non-empty)."""
    return {
        _check_top_level_name(str(k), "$"): serialize_value(v, f"$.{k}") for k, v in item.items()
    }


class _RawNumber(str):
    """Marker: a number whose exact text is emitted unquoted into JSON."""


def to_plain(value: Value) -> Any:
    """Map a decoded value onto JSON-ready plain data (sets sorted, bytes base64)."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            # NaN/Infinity are not JSON; writing them would corrupt the column.
            raise DdbJsonError("$", f"number {value} is not finite")
        return _RawNumber(_format_number(value))
    if isinstance(value, float) and not math.isfinite(value):
        raise DdbJsonError("$", f"number {value} is not finite")  # orjson would write null
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        # DynamoDB sets are unordered and homogeneous: sort the members for stable output.
        return [to_plain(v) for v in sorted(value)]
    return value


def _dumps(obj: Any, out: list[str]) -> None:
    if isinstance(obj, _RawNumber):
        out.append(str.__str__(obj))
    elif isinstance(obj, dict):
        out.append("{")
        first = True
        for k, v in obj.items():
            if not first:
                out.append(",")
            first = False
            out.append(orjson.dumps(k).decode())
            out.append(":")
            _dumps(v, out)
        out.append("}")
    elif isinstance(obj, list):
        out.append("[")
        for i, v in enumerate(obj):
            if i:
                out.append(",")
            _dumps(v, out)
        out.append("]")
    else:
        out.append(orjson.dumps(obj).decode())


def image_to_json(image: Mapping[str, Value] | None) -> str | None:
    """Render a decoded image as plain JSON text with exact numbers; ``None`` stays ``None``.

    Numbers are written with their exact decimal text (never through float), sets become
    sorted arrays, binary becomes base64. Attribute order follows the image.
    """
    if image is None:
        return None
    out: list[str] = []
    _dumps(to_plain(dict(image)), out)
    return "".join(out)


def value_to_json(value: Value) -> str:
    """Render one decoded value as plain JSON text (same rules as :func:`image_to_json`)."""
    out: list[str] = []
    _dumps(to_plain(value), out)
    return "".join(out)
