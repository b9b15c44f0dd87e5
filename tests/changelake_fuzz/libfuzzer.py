"""Coverage-guided fuzzing (atheris, i.e. libFuzzer for Python) of one target per process.

libFuzzer owns the process (``atheris.Fuzz()`` ends it), so each target runs in a child::

    python -m changelake_fuzz.libfuzzer TARGET CORPUS_DIR [libFuzzer flags…]

changelake's own packages are instrumented (coverage feedback: an input that reaches a new
branch of the codec or a handler is kept and mutated further), the corpus is seeded with the
golden fixtures and the regression inputs of tests/fixtures/fuzz/, and a dictionary of the
format's tokens (type keys, field names, event names) lets mutations speak DynamoDB JSON.
A crash (any escaping exception, a broken property) is written by libFuzzer to
``-artifact_prefix`` and the process exits non-zero.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from urllib.parse import quote_plus

import atheris
import orjson

INSTRUMENTED = (
    "changelake",
    "changelake_consumer",
    "changelake_transform",
    "changelake_catalog",
)
TOKENS = (
    *('"S"', '"N"', '"B"', '"BOOL"', '"NULL"', '"M"', '"L"', '"SS"', '"NS"', '"BS"'),
    *('"Keys"', '"NewImage"', '"OldImage"', '"SizeBytes"', '"dynamodb"', '"eventName"'),
    *('"ApproximateCreationDateTime"', '"ApproximateCreationDateTimePrecision"'),
    *('"MICROSECOND"', '"MILLISECOND"', '"INSERT"', '"MODIFY"', '"REMOVE"', '"userIdentity"'),
    *('"tableName"', '"eventID"', '"awsRegion"', '"principalId"', '"dynamodb.amazonaws.com"'),
    *('"records"', '"recordId"', '"data"', '"kinesisRecordMetadata"', '"Records"', '"s3"'),
    *('"eventSource"', '"aws:s3"', '"ObjectCreated:Put"', '"bucket"', '"object"', '"key"'),
    *('"changes/persons/dt=2026-11-27/hour=10/"', '".parquet"', "%2F", "%3D", "+"),
    *("true", "false", "null", "1E-130", "9.9999999999999999999999999999999999999E+125", "-0"),
)


def dictionary_text() -> str:
    """The tokens in libFuzzer's ``-dict`` format (one quoted, escaped token a line)."""
    lines = []
    for token in TOKENS:
        escaped = "".join(
            c if c.isprintable() and c not in '"\\' else f"\\x{ord(c):02x}" for c in token
        )
        lines.append(f'"{escaped}"')
    return "\n".join(lines) + "\n"


ALL = "all"
"""The pseudo-target that fuzzes every target in one process (the CI run)."""


def seeds(target: str, fixtures: Path) -> list[bytes]:
    """The starting corpus of ``target``: real-shaped inputs it should accept or refuse."""
    if target == ALL:
        from changelake_fuzz.targets import TARGETS

        return [
            bytes([i]) + seed for i, name in enumerate(TARGETS) for seed in seeds(name, fixtures)
        ]
    from changelake_lake import layout
    from changelake_testsupport import golden

    records = [f.raw for f in golden.load_valid()] + [f.raw for f in golden.load_malformed()]
    regression = sorted((fixtures / target).glob("*")) if (fixtures / target).is_dir() else []
    found = [path.read_bytes() for path in regression]
    if target == "record":
        return records + found
    if target == "codec":
        values: list[bytes] = []
        for fixture in golden.load_valid():
            payload = orjson.loads(fixture.raw)["dynamodb"]
            image = payload.get("NewImage") or payload["OldImage"]
            values.append(orjson.dumps(image))
            values.extend(orjson.dumps(value) for value in image.values())
        return values + found
    if target == "transform":
        event = {
            "invocationId": "seed",
            "records": [
                {"recordId": f"r{i}", "data": base64.b64encode(raw).decode()}
                for i, raw in enumerate(records[:4])
            ],
        }
        return [*records, orjson.dumps(event), *found]
    partition = layout.Partition("2026-11-27", "10")
    keys = [
        layout.change_object_key("persons", partition, "shardId-000000000000", "1", "9"),
        layout.changes_partition_prefix("persons", partition) + "x y.csv",
    ]
    bodies = [
        orjson.dumps(
            {
                "Records": [
                    {
                        "eventSource": "aws:s3",
                        "eventName": "ObjectCreated:Put",
                        "s3": {"bucket": {"name": "lake"}, "object": {"key": quote_plus(key)}},
                    }
                ]
            }
        )
        for key in keys
    ]
    return [*bodies, b'{"Event":"s3:TestEvent"}', *found]


def main(argv: list[str]) -> None:
    """Fuzz ``argv[1]`` with corpus folder ``argv[2]``; the rest are libFuzzer's flags."""
    target = argv[1]
    with atheris.instrument_imports(include=list(INSTRUMENTED)):
        from changelake_fuzz import targets

    if target == ALL:
        every = list(targets.TARGETS.values())

        def one_input(data: bytes) -> None:
            if data:  # the first byte picks the target: one process (and start-up) for all
                every[data[0] % len(every)](data[1:])

    else:
        fuzz = targets.TARGETS[target]

        def one_input(data: bytes) -> None:
            fuzz(data)

    atheris.Setup([argv[0], argv[2], *argv[3:]], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
