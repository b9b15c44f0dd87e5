"""The column and type policy of the curated change table (``<table>_changes``), shared by the
consumer (which writes Parquet) and the catalog (which maps the same Arrow types to Glue types
with :func:`changelake_lake.glue_schema.glue_type`).

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

Every attribute path has its own column, a pure function of the path (docs/adr/0018):

* an *exact* top-level name (already in Athena's alphabet: ``[a-z0-9_]``, no ``__``, no leading
  or trailing ``_``) is the column stem as it is: ``name``, ``first_name``;
* map members are joined with ``__`` (``address__city``); a member is exact when its name is
  exact and is not a type token (``n``, ``bool``, ``n_text`` …) or a disambiguator;
* any other name keeps its meaning in the stem (accents transliterated: ``ünïcödé`` →
  ``unicode``; other letters, symbols and control characters escaped by code point: ``名`` →
  ``u540d``, ``😀`` → ``u1f600``, NUL → ``u0``; spaces and punctuation ``_``) and gets the
  disambiguator ``__h`` + 8 hex digits of SHA-256 of the exact path, so ``a.b``, ``a_b`` and
  ``a: {b}`` (``a_b__h…``, ``a_b``, ``a__b__h…``: ``b`` is a type token) and
  ``UPPER``/``upper`` never share a column;
* names that would collide with a system or partition column get the prefix ``attr__``.

Exact names contain no ``__``, so the type suffix (always the last ``__`` part) is never
produced by a name. The exact value of every attribute is always in ``new_image``/``old_image``;
the consumer also writes each column's attribute path into the Parquet field metadata
(:data:`PATH_METADATA`), which the catalog copies to the Glue column's comment and parameters.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
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

_EXACT_RE = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*\Z")
_UNDERSCORES_RE = re.compile(r"_{2,}")
_DISAMBIGUATOR_RE = re.compile(r"h[0-9a-f]{8}\Z")
# Member names that would read as a type suffix or a disambiguator after ``__``.
_TYPE_TOKENS = frozenset(
    [suffix[2:] for suffix in TAG_SUFFIX.values() if suffix] + [NUMBER_TEXT_SUFFIX[2:]]
)
NESTING = "__"
PATH_METADATA = b"changelake.attribute_path"


def _is_exact(name: str, *, member: bool) -> bool:
    if not _EXACT_RE.match(name):
        return False
    return not member or (name not in _TYPE_TOKENS and not _DISAMBIGUATOR_RE.match(name))


def _escape(char: str) -> str:
    if "a" <= char <= "z" or "0" <= char <= "9":
        return char
    category = unicodedata.category(char)
    if char.isalnum() or category == "Cc" or (ord(char) > 127 and category[0] not in "ZP"):
        return f"_u{ord(char):x}_"  # letters, symbols, controls: meaning kept, never silently "_"
    return "_"


@lru_cache(maxsize=65536)
def sanitize(name: str) -> str:
    """One name segment in Athena's alphabet that keeps its meaning, never with ``__`` (cached).

    Accents are transliterated (NFKD without combining marks, case-folded), other letters and
    control characters are escaped by code point, anything else becomes ``_``.
    """
    folded = "".join(
        c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c)
    ).casefold()
    clean = _UNDERSCORES_RE.sub("_", "".join(_escape(c) for c in folded)).strip("_")
    return clean or "x"


def disambiguator(path: tuple[str, ...]) -> str:
    """``h`` + 8 hex digits of SHA-256 of the exact path (JSON): stable across processes."""
    digest = hashlib.sha256(json.dumps(list(path), ensure_ascii=False).encode()).hexdigest()
    return "h" + digest[:8]


@lru_cache(maxsize=65536)
def base_name(path: tuple[str, ...]) -> str:
    """Column stem of an attribute path (top-level name, then map keys): one per path."""
    exact = all(_is_exact(p, member=i > 0) for i, p in enumerate(path))
    if len(path) > 1 and path[0] == RESERVED_PREFIX[: -len(NESTING)]:
        exact = False  # ("attr", "event_id") must not meet the renamed event_id
    stem = NESTING.join(sanitize(p) for p in path)
    if not exact:
        stem += NESTING + disambiguator(path)
    if stem in RESERVED_NAMES:
        return RESERVED_PREFIX + stem
    return stem


# column -> the attribute path it was named after (filled as names are made; bounded)
_PATHS: dict[str, tuple[str, ...]] = {}
_PATHS_LIMIT = 65536


def _remember(name: str, path: tuple[str, ...]) -> str:
    if len(_PATHS) < _PATHS_LIMIT:
        _PATHS[name] = path
    return name


def column_name(path: tuple[str, ...], tag: str) -> str:
    """The one column that values with ``tag`` at ``path`` land in (see the module table)."""
    return _remember(base_name(path) + TAG_SUFFIX[tag], path)


def number_text_column(path: tuple[str, ...]) -> str:
    """Companion column of numbers that do not fit :data:`NUMBER_TYPE` exactly."""
    return _remember(base_name(path) + NUMBER_TEXT_SUFFIX, path)


def path_metadata(column: str) -> dict[bytes, bytes] | None:
    """Parquet field metadata naming the attribute path of a column made in this process."""
    path = _PATHS.get(column)
    if path is None:
        return None
    return {PATH_METADATA: json.dumps(list(path), ensure_ascii=False).encode()}


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
