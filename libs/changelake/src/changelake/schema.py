"""The column and type policy of the curated change table (``<table>_changes``), shared by the
consumer (which writes Parquet) and the catalog (which maps the same Arrow types to Glue types
with :func:`changelake.glue_schema.glue_type`).

The policy is a pure function of the attribute *path* and the DynamoDB *type tag* — never of
the value, of the order values arrive in, or of which shard/process/file saw them first — so
every file ever written agrees on one physical type per column (docs/adr/0005):

==========  ===========================  =====================================================
tag         column                       Arrow type
==========  ===========================  =====================================================
S           ``<name>``                   string
N           ``<name>__n``                decimal(38, 9); a number that does not fit exactly
                                         goes to ``<name>__n_text`` (string, exact text)
BOOL        ``<name>__bool``             bool
B           ``<name>__b``                binary
SS/NS/BS    ``<name>__ss|__ns|__bs``     list<string> (sorted; numbers exact text; base64)
L           ``<name>__l``                string (plain JSON of the list)
M           flattened: ``<name>_<key>``  each member by the same rules; a map whose path
            has MAX_FLATTEN_DEPTH + 1 segments becomes ``<path>__m`` (string, plain JSON)
NULL        (no column: every column of the attribute is null for that row)
==========  ===========================  =====================================================

Names are sanitized to Athena's alphabet (lower case, ``[a-z0-9_]``, no ``__`` runs, no leading
or trailing ``_``), so a type suffix (always introduced by ``__``) can never be produced by an
attribute name, and names that would collide with a system or partition column get the prefix
``attr__``. The exact value of every attribute is always in ``new_image``/``old_image``.
"""

from __future__ import annotations

import re
from functools import lru_cache

import pyarrow as pa

NUMBER_PRECISION = 38
NUMBER_SCALE = 9
NUMBER_TYPE = pa.decimal128(NUMBER_PRECISION, NUMBER_SCALE)
STRING_LIST = pa.list_(pa.string())
TIMESTAMP = pa.timestamp("us", tz="UTC")

# A column path has at most MAX_FLATTEN_DEPTH + 1 segments; a map found at the last one is JSON.
MAX_FLATTEN_DEPTH = 3

RESERVED_PREFIX = "attr__"
NUMBER_TEXT_SUFFIX = "__n_text"

# Suffix and Arrow type per DynamoDB type tag (M is flattened, NULL has no column).
TAG_SUFFIX: dict[str, str] = {
    "S": "",
    "N": "__n",
    "BOOL": "__bool",
    "B": "__b",
    "SS": "__ss",
    "NS": "__ns",
    "BS": "__bs",
    "L": "__l",
    "M": "__m",
}
TAG_TYPE: dict[str, pa.DataType] = {
    "S": pa.string(),
    "N": NUMBER_TYPE,
    "BOOL": pa.bool_(),
    "B": pa.binary(),
    "SS": STRING_LIST,
    "NS": STRING_LIST,
    "BS": STRING_LIST,
    "L": pa.string(),
    "M": pa.string(),
}

# System columns, in file order (docs/architecture.md "Curated change table").
SYSTEM_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("event_id", pa.string()),
    ("event_name", pa.string()),
    ("event_time", TIMESTAMP),
    ("item_key", pa.string()),
    ("new_image", pa.string()),
    ("old_image", pa.string()),
    ("changed_attributes", STRING_LIST),
    ("is_ttl_delete", pa.bool_()),
    ("size_bytes", pa.int64()),
    ("shard_id", pa.string()),
    ("sequence_number", pa.string()),
    ("arrival_time", TIMESTAMP),
)
SYSTEM_SCHEMA = pa.schema(
    [pa.field(n, t, nullable=n not in ("event_id",)) for n, t in SYSTEM_COLUMNS]
)
PARTITION_COLUMNS = ("dt", "hour")
RESERVED_NAMES = frozenset([n for n, _ in SYSTEM_COLUMNS] + list(PARTITION_COLUMNS))

_UNSAFE_RE = re.compile(r"[^a-z0-9_]+")
_UNDERSCORES_RE = re.compile(r"_{2,}")


@lru_cache(maxsize=65536)
def sanitize(name: str) -> str:
    """One attribute-name segment in Athena's alphabet, never containing ``__`` (cached)."""
    clean = _UNDERSCORES_RE.sub("_", _UNSAFE_RE.sub("_", name.lower())).strip("_")
    return clean or "x"


@lru_cache(maxsize=65536)
def base_name(path: tuple[str, ...]) -> str:
    """Column stem of an attribute path (top-level name, then map keys), reserved-safe."""
    stem = "_".join(sanitize(p) for p in path)
    if stem in RESERVED_NAMES:
        return RESERVED_PREFIX + stem
    return stem


def column_name(path: tuple[str, ...], tag: str) -> str:
    """The one column that values with ``tag`` at ``path`` land in (see the module table)."""
    return base_name(path) + TAG_SUFFIX[tag]


def number_text_column(path: tuple[str, ...]) -> str:
    """Companion column of numbers that do not fit :data:`NUMBER_TYPE` exactly."""
    return base_name(path) + NUMBER_TEXT_SUFFIX


def arrow_type_for_column(name: str) -> pa.DataType:
    """The Arrow type of any column this policy can produce, decided by its name alone."""
    for sys_name, sys_type in SYSTEM_COLUMNS:
        if name == sys_name:
            return sys_type
    if name.endswith(NUMBER_TEXT_SUFFIX):
        return pa.string()
    head, sep, suffix = name.rpartition("__")
    if sep and head and head != RESERVED_PREFIX.rstrip("_"):
        for tag, tag_suffix in TAG_SUFFIX.items():
            if tag_suffix == "__" + suffix:
                return TAG_TYPE[tag]
    return pa.string()
