"""Trino install (download, checksum, unpack, cache), Java lookup, configuration, value typing."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import IO

import pytest
from changelake_cli.trino_server import (
    HIVE_PLUGIN,
    SERVER_CORE,
    AwsTarget,
    TrinoError,
    catalog_properties,
    find_java_home,
    install,
)
from changelake_lake.query import transpile
from changelake_lake.query.model import QueryError
from changelake_lake.query.trino_engine import TrinoEngine, typed

pytestmark = pytest.mark.unit

BASE = "https://maven.test/maven2"


def _server_tar() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in {
            "trino-server-core-476/bin/launcher": b"#!/bin/sh\n",
            "trino-server-core-476/lib/io.trino_trino-main-476.jar": b"jar",
            "trino-server-core-476/plugin/geospatial/x.jar": b"not wanted",
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _plugin_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("trino-hive-476/io.trino_trino-hive-476.jar", b"hive")
    return out.getvalue()


class _Maven:
    """Serves the two artifacts and their .sha1 files; counts requests."""

    def __init__(self, corrupt: bool = False) -> None:
        server, plugin = _server_tar(), _plugin_zip()
        self.files = {
            SERVER_CORE.url("476", BASE): server,
            HIVE_PLUGIN.url("476", BASE): plugin,
        }
        for url, data in list(self.files.items()):
            self.files[url + ".sha1"] = (
                hashlib.sha1(data, usedforsecurity=False).hexdigest().encode()
            )
        if corrupt:
            self.files[HIVE_PLUGIN.url("476", BASE)] = plugin + b"tampered"
        self.requests: list[str] = []

    def open(self, url: str) -> IO[bytes]:
        self.requests.append(url)
        return io.BytesIO(self.files[url])


def test_install_downloads_verifies_and_keeps_only_what_trino_needs(tmp_path: Path) -> None:
    maven = _Maven()
    report = install(tmp_path, version="476", base_url=BASE, opener=maven.open)
    again = install(tmp_path, version="476", base_url=BASE, opener=maven.open)

    home = tmp_path / "trino-server-476"
    assert report.home == again.home == home
    assert report.downloaded_bytes == len(_server_tar()) + len(_plugin_zip())
    assert again.downloaded_bytes == 0
    assert len(maven.requests) == 4  # two .sha1 + two archives, once
    assert (home / "lib" / "io.trino_trino-main-476.jar").read_bytes() == b"jar"
    assert (home / "plugin" / "hive" / "io.trino_trino-hive-476.jar").read_bytes() == b"hive"
    assert not (home / "plugin" / "geospatial").exists()  # bundled plugins are not unpacked
    marker = (home / ".changelake-installed").read_text()
    assert "trino-hive-476.zip sha1 " in marker
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trino-server-476"]  # no leftovers


def test_install_refuses_a_checksum_mismatch_and_installs_nothing(tmp_path: Path) -> None:
    with pytest.raises(TrinoError, match=r"checksum mismatch for .*trino-hive-476\.zip"):
        install(tmp_path, version="476", base_url=BASE, opener=_Maven(corrupt=True).open)
    assert list(tmp_path.iterdir()) == []


def _jdk(root: Path, name: str, version: str) -> Path:
    home = root / name
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text("")
    (home / "release").write_text(f'IMPLEMENTOR="x"\nJAVA_VERSION="{version}"\n')
    return home


def test_find_java_home_picks_the_newest_recent_enough_jdk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHANGELAKE_TRINO_JAVA_HOME", raising=False)
    monkeypatch.setenv("JAVA_HOME", str(_jdk(tmp_path, "jdk17", "17.0.12")))
    _jdk(tmp_path, "temurin-25", "25.0.3")
    _jdk(tmp_path, "temurin-24", "24.0.1")
    assert find_java_home(24, tmp_path) == tmp_path / "temurin-25"


def test_find_java_home_says_what_it_looked_at(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHANGELAKE_TRINO_JAVA_HOME", raising=False)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    _jdk(tmp_path, "jdk17", "17.0.12")
    with pytest.raises(TrinoError, match=r"needs Java 24 or newer .*jdk17 \(Java 17\)"):
        find_java_home(24, tmp_path)
    monkeypatch.setenv("CHANGELAKE_TRINO_JAVA_HOME", str(tmp_path / "jdk17"))
    with pytest.raises(TrinoError, match="is Java 17"):
        find_java_home(24, tmp_path)


def test_catalog_properties_point_glue_and_s3_at_the_emulator() -> None:
    props = catalog_properties(AwsTarget("eu-west-1", "http://127.0.0.1:4566", "k", "s"))
    assert props["hive.metastore"] == "glue"
    assert props["hive.metastore.glue.endpoint-url"] == props["s3.endpoint"]
    assert props["s3.path-style-access"] == "true"
    assert props["fs.native-s3.enabled"] == "true"
    assert props["hive.partition-projection-enabled"] == "true"
    assert (props["s3.aws-access-key"], props["hive.metastore.glue.aws-secret-key"]) == ("k", "s")
    real = catalog_properties(AwsTarget("eu-west-1"))
    assert not any("endpoint" in k or "aws-" in k for k in real)  # SDK default chain on AWS


def test_typed_values_follow_the_type_signature() -> None:
    row = {
        "rawType": "row",
        "arguments": [
            {
                "kind": "NAMED_TYPE",
                "value": {
                    "fieldName": {"name": "type"},
                    "typeSignature": {"rawType": "varchar", "arguments": []},
                },
            },
            {
                "kind": "NAMED_TYPE",
                "value": {
                    "fieldName": {"name": "n"},
                    "typeSignature": {"rawType": "decimal", "arguments": []},
                },
            },
        ],
    }
    assert typed(["user", "1.500000000"], row) == {"type": "user", "n": Decimal("1.500000000")}
    assert typed("2026-11-29 21:10:41.402", {"rawType": "timestamp"}) == datetime(
        2026, 11, 29, 21, 10, 41, 402000, tzinfo=UTC
    )
    paris = typed("2024-05-01 10:00:00.250 Europe/Paris", {"rawType": "timestamp with time zone"})
    assert paris == datetime(2024, 5, 1, 8, 0, 0, 250000, tzinfo=UTC)
    offset = typed("2024-05-01 10:00:00.000 +02:00", {"rawType": "timestamp with time zone"})
    assert offset.utcoffset() == timedelta(hours=2)
    assert offset.tzinfo == timezone(timedelta(hours=2))
    assert typed("2024-05-01", {"rawType": "date"}) == date(2024, 5, 1)
    assert typed("AAH/", {"rawType": "varbinary"}) == b"\x00\x01\xff"
    array = {"rawType": "array", "arguments": [{"kind": "TYPE", "value": {"rawType": "decimal"}}]}
    assert typed(["1", None], array) == [Decimal(1), None]


def test_trino_engine_needs_an_http_url_and_says_where_to_get_one() -> None:
    with pytest.raises(QueryError, match="must start with http"):
        TrinoEngine("localhost:8080")
    with pytest.raises(QueryError, match="local up --with-trino"):
        TrinoEngine("http://127.0.0.1:9", timeout_s=1).run("SELECT 1")


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT t AT TIME ZONE 'Europe/Paris' FROM x", "AT TIME ZONE"),
        ("SELECT json_extract_scalar(s, '$.a') FROM x", "on column 's' of type struct<a:string>"),
        ("SELECT json_extract(tags, '$[0]') FROM x", "of type array<string>"),
    ],
)
def test_reject_unsupported_names_the_construct(sql: str, message: str) -> None:
    types = {"t": {"timestamp"}, "s": {"struct<a:string>"}, "tags": {"array<string>"}}
    with pytest.raises(QueryError, match=r"not supported locally: .*") as caught:
        transpile.reject_unsupported(transpile.parse_query(sql), types)
    assert message in str(caught.value)
    assert str(caught.value).endswith("(use --engine trino or athena)")


def test_reject_unsupported_lets_json_on_strings_through() -> None:
    tree = transpile.parse_query("SELECT json_extract_scalar(new_image, '$.a') FROM x")
    transpile.reject_unsupported(tree, {"new_image": {"string"}})


def test_hive_millis_rounds_half_up_like_trino() -> None:
    import pyarrow as pa
    from changelake_lake.query.hive_types import hive_millis

    stored = pa.array(
        [
            datetime(2024, 5, 1, 12, 40, 0, 500001, tzinfo=UTC),
            datetime(2024, 5, 1, 12, 40, 0, 500500, tzinfo=UTC),
            datetime(2024, 5, 1, 12, 40, 0, 999600, tzinfo=UTC),
            None,
        ],
        pa.timestamp("us", tz="UTC"),
    )
    read = hive_millis(stored)
    assert read.type == stored.type
    assert read.to_pylist() == [
        datetime(2024, 5, 1, 12, 40, 0, 500000, tzinfo=UTC),
        datetime(2024, 5, 1, 12, 40, 0, 501000, tzinfo=UTC),
        datetime(2024, 5, 1, 12, 40, 1, tzinfo=UTC),
        None,
    ]
