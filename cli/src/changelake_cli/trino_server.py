"""A local Trino server over the lake's Glue catalog and S3 (``local up --with-trino``, tests).

Trino is what Athena (engine v3) runs, so the same SQL, the same Glue definitions and the same
Parquet/JSON objects read by real Trino prove what Athena will see. This module:

* **installs** Trino once, cached: the ``trino-server-core`` tarball (the engine without
  connectors) plus only the ``trino-hive`` plugin zip, both from Maven Central, each checked
  against Maven Central's ``.sha1`` before it is unpacked; a marker file records the verified
  digests, so a later run reuses the folder without touching the network;
* **finds a Java** recent enough for that Trino (``JAVA_HOME`` for Trino only; the rest of the
  stack keeps its own Java), or fails naming what it looked at;
* **renders** the configuration: one coordinator that also runs tasks, one Hive catalog named
  ``awsdatacatalog`` (Athena's catalog name, so qualified names work unchanged) using the Glue
  metastore and the native S3 file system, at an emulator's endpoints (path-style, fake
  credentials) or at real AWS, with partition projection enabled as in Athena;
* **runs** it as a child process and waits until it accepts queries.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Self

from changelake.adapters import aws
from changelake.lifecycle import StartStop

log = logging.getLogger(__name__)

TRINO_VERSION = "476"
# Trino 476 is built for Java 24 and refuses to start on an older runtime.
MIN_JAVA = 24
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
CATALOG = "awsdatacatalog"
USER = "changelake"
JVM_CANDIDATES = Path("/usr/lib/jvm")
CACHE_ENV = "CHANGELAKE_TRINO_CACHE_DIR"
JAVA_ENV = "CHANGELAKE_TRINO_JAVA_HOME"
_COMPLETE = ".changelake-installed"
_PR_SET_PDEATHSIG = 1


class TrinoError(RuntimeError):
    """Trino cannot be installed or started (the message says why and what to do)."""


@dataclass(frozen=True, slots=True)
class Artifact:
    """One Maven Central file of the install."""

    artifact_id: str
    extension: str

    def file_name(self, version: str) -> str:
        """``<artifact>-<version>.<ext>``."""
        return f"{self.artifact_id}-{version}.{self.extension}"

    def url(self, version: str, base: str = MAVEN_CENTRAL) -> str:
        """Its URL under ``base`` (group ``io.trino``)."""
        return f"{base}/io/trino/{self.artifact_id}/{version}/{self.file_name(version)}"


SERVER_CORE = Artifact("trino-server-core", "tar.gz")
HIVE_PLUGIN = Artifact("trino-hive", "zip")


def default_cache_dir() -> Path:
    """``$CHANGELAKE_TRINO_CACHE_DIR``, else the repository's ignored ``.cache/trino`` when the
    CLI runs from a checkout, else ``~/.cache/changelake/trino``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    repo = Path(__file__).resolve().parents[3]
    if (repo / "uv.lock").is_file() and (repo / "cli").is_dir():
        return repo / ".cache" / "trino"
    return Path.home() / ".cache" / "changelake" / "trino"


@dataclass(frozen=True, slots=True)
class InstallReport:
    """What :func:`install` did: the folder, and bytes downloaded (0 when cached)."""

    home: Path
    downloaded_bytes: int
    seconds: float


def install(
    cache_dir: Path | None = None,
    *,
    version: str = TRINO_VERSION,
    base_url: str = MAVEN_CENTRAL,
    opener: Callable[[str], IO[bytes]] | None = None,
) -> InstallReport:
    """Download, verify and unpack Trino (server core + Hive plugin) once; reuse it after."""
    cache = cache_dir or default_cache_dir()
    home = cache / f"trino-server-{version}"
    if (home / _COMPLETE).is_file():
        return InstallReport(home, 0, 0.0)
    started = time.monotonic()
    open_url = opener or _open_url
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".trino-{version}-", dir=cache))
    try:
        downloaded = 0
        digests: dict[str, str] = {}
        archives: dict[Artifact, Path] = {}
        for artifact in (SERVER_CORE, HIVE_PLUGIN):
            url = artifact.url(version, base_url)
            expected = _read_text(open_url, url + ".sha1").split()[0].lower()
            if not re.fullmatch(r"[0-9a-f]{40}", expected):
                raise TrinoError(f"{url}.sha1 is not a SHA-1 digest: {expected[:60]!r}")
            target = staging / artifact.file_name(version)
            size, actual = _download(open_url, url, target)
            if actual != expected:
                raise TrinoError(
                    f"checksum mismatch for {url}: Maven Central says sha1 {expected}, "
                    f"the {size:,} bytes downloaded have {actual}; nothing was installed"
                )
            log.info("trino artifact verified", extra={"url": url, "bytes": size, "sha1": actual})
            downloaded += size
            digests[artifact.file_name(version)] = actual
            archives[artifact] = target
        unpacked = staging / "home"
        _unpack_server(archives[SERVER_CORE], unpacked)
        _unpack_plugin(archives[HIVE_PLUGIN], unpacked / "plugin" / "hive")
        (unpacked / _COMPLETE).write_text(
            "".join(f"{name} sha1 {digest}\n" for name, digest in sorted(digests.items()))
        )
        if home.exists():
            shutil.rmtree(home)  # an incomplete earlier attempt
        unpacked.rename(home)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return InstallReport(home, downloaded, time.monotonic() - started)


def _open_url(url: str) -> IO[bytes]:
    try:
        response: IO[bytes] = urllib.request.urlopen(url, timeout=60)
    except urllib.error.URLError as exc:
        raise TrinoError(f"cannot download {url}: {exc}") from exc
    return response


def _read_text(open_url: Callable[[str], IO[bytes]], url: str) -> str:
    with open_url(url) as response:
        return response.read(4096).decode("ascii", "replace").strip()


def _download(open_url: Callable[[str], IO[bytes]], url: str, target: Path) -> tuple[int, str]:
    digest = hashlib.sha1(usedforsecurity=False)
    size = 0
    with open_url(url) as response, target.open("wb") as out:
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _inside(root: Path, relative: str) -> Path:
    target = (root / relative).resolve()
    if not target.is_relative_to(root.resolve()):
        raise TrinoError(f"archive member escapes its folder: {relative!r}")
    return target


def _unpack_server(archive: Path, home: Path) -> None:
    """The server core without its bundled optional plugins (only ``bin/`` and ``lib/``)."""
    home.mkdir(parents=True)
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            _, _, rest = member.name.partition("/")
            if not rest or rest.split("/", 1)[0] not in ("bin", "lib"):
                continue
            if not (member.isfile() or member.isdir()):
                continue
            target = _inside(home, rest)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None
            with source, target.open("wb") as out:
                shutil.copyfileobj(source, out)
            target.chmod(0o755 if member.mode & 0o111 else 0o644)
    if not any((home / "lib").glob("*trino-main-*.jar")):
        raise TrinoError(f"{archive.name} has no lib/trino-main jar: not a Trino server")


def _unpack_plugin(archive: Path, folder: Path) -> None:
    folder.mkdir(parents=True)
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            name = info.filename.split("/", 1)[-1]
            if info.is_dir() or not name.endswith(".jar"):
                continue
            with zf.open(info) as source, _inside(folder, name).open("wb") as out:
                shutil.copyfileobj(source, out)
    if not any(folder.glob("*.jar")):
        raise TrinoError(f"{archive.name} holds no jars")


def java_major(java_home: Path) -> int | None:
    """The major version of the JDK at ``java_home`` (its ``release`` file), or None."""
    release = java_home / "release"
    if not (java_home / "bin" / "java").is_file() or not release.is_file():
        return None
    match = re.search(r'^JAVA_VERSION="(\d+)', release.read_text(errors="replace"), re.M)
    return int(match[1]) if match else None


def find_java_home(minimum: int = MIN_JAVA, candidates_dir: Path = JVM_CANDIDATES) -> Path:
    """A JDK of at least ``minimum``: ``$CHANGELAKE_TRINO_JAVA_HOME``, ``$JAVA_HOME``, then the
    newest under ``/usr/lib/jvm``; :class:`TrinoError` naming what was looked at otherwise."""
    seen: list[str] = []
    explicit = os.environ.get(JAVA_ENV)
    if explicit:
        major = java_major(Path(explicit))
        if major is not None and major >= minimum:
            return Path(explicit)
        raise TrinoError(
            f"{JAVA_ENV}={explicit} is {'not a JDK' if major is None else f'Java {major}'}; "
            f"Trino {TRINO_VERSION} needs Java {minimum} or newer"
        )
    homes = [Path(os.environ["JAVA_HOME"])] if os.environ.get("JAVA_HOME") else []
    if candidates_dir.is_dir():
        homes += sorted(candidates_dir.iterdir())
    best: tuple[int, Path] | None = None
    for home in homes:
        major = java_major(home)
        seen.append(f"{home} ({'no JDK' if major is None else f'Java {major}'})")
        if major is not None and major >= minimum and (best is None or major > best[0]):
            best = (major, home)
    if best is None:
        raise TrinoError(
            f"Trino {TRINO_VERSION} needs Java {minimum} or newer and none was found "
            f"(looked at: {', '.join(seen) or 'nothing'}). Install a JDK >= {minimum} "
            f"(e.g. Temurin) and set {JAVA_ENV} to its folder."
        )
    return best[1]


@dataclass(frozen=True, slots=True)
class AwsTarget:
    """Where Trino's Glue metastore and S3 file system go: real AWS or an emulator."""

    region: str
    endpoint: str | None = None
    access_key: str | None = None
    secret_key: str | None = None

    @classmethod
    def emulator(cls, endpoint: str, region: str) -> AwsTarget:
        """The local stack's emulator, with the dummy credentials every local client uses."""
        return cls(
            region=region,
            endpoint=endpoint,
            access_key=aws.LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            secret_key=aws.LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )


def catalog_properties(aws: AwsTarget) -> dict[str, str]:
    """The Hive connector's catalog properties: Glue metastore + native S3, as Athena reads.

    With an ``endpoint`` (the emulator) both Glue and S3 use it, S3 path-style; without one,
    Trino's AWS SDK default chain finds the region's endpoints and the credentials.
    """
    props = {
        "connector.name": "hive",
        "hive.metastore": "glue",
        "hive.metastore.glue.region": aws.region,
        # Athena reads a partition projection's table without registered partitions.
        "hive.partition-projection-enabled": "true",
        "fs.native-s3.enabled": "true",
        "s3.region": aws.region,
    }
    if aws.endpoint:
        props |= {
            "hive.metastore.glue.endpoint-url": aws.endpoint,
            "s3.endpoint": aws.endpoint,
            "s3.path-style-access": "true",
        }
    if aws.access_key and aws.secret_key:
        props |= {
            "hive.metastore.glue.aws-access-key": aws.access_key,
            "hive.metastore.glue.aws-secret-key": aws.secret_key,
            "s3.aws-access-key": aws.access_key,
            "s3.aws-secret-key": aws.secret_key,
        }
    return props


def server_properties(port: int, home: Path, etc: Path) -> dict[str, str]:
    """``config.properties`` of a single-node coordinator on 127.0.0.1:``port``."""
    return {
        "coordinator": "true",
        "node-scheduler.include-coordinator": "true",
        "http-server.http.port": str(port),
        "discovery.uri": f"http://127.0.0.1:{port}",
        "node.environment": "changelake",
        "node.id": str(uuid.uuid4()),
        "node.internal-address": "127.0.0.1",
        "node.bind-ip": "127.0.0.1",
        "plugin.dir": str(home / "plugin"),
        "catalog.config-dir": str(etc / "catalog"),
        # A laptop-sized single node: a small heap, a few task threads.
        "query.max-memory": "1GB",
        "query.max-memory-per-node": "512MB",
        "task.concurrency": "2",
        "task.max-worker-threads": "8",
    }


JVM_OPTIONS = (
    "-Xmx1536m",
    "-XX:+UseSerialGC",
    "-XX:+ExitOnOutOfMemoryError",
    "-XX:TieredStopAtLevel=1",
    "-Djdk.attach.allowAttachSelf=true",
    "-Dfile.encoding=UTF-8",
    "-Duser.timezone=UTC",
    "--enable-native-access=ALL-UNNAMED",
    "--sun-misc-unsafe-memory-access=allow",
)


try:
    _PRCTL: Callable[..., int] | None = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _PRCTL = None


def _die_with_parent() -> None:
    """In the child before exec: Linux sends it SIGTERM when the process that started it dies,
    so a killed ``local up`` or test run never leaves a Trino behind. Only a prctl call through
    a function looked up before the fork (nothing that allocates or takes a lock)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _write_properties(path: Path, props: Mapping[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))


class TrinoServer(StartStop):
    """A Trino coordinator as a child process on 127.0.0.1 (context manager)."""

    def __init__(
        self,
        aws: AwsTarget,
        *,
        port: int = 0,
        cache_dir: Path | None = None,
        start_timeout_s: float = 180.0,
    ) -> None:
        self.aws = aws
        self.port = port
        self.cache_dir = cache_dir
        self.start_timeout_s = start_timeout_s
        self.install_report: InstallReport | None = None
        self.start_seconds: float | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path | None:
        """Trino's own stdout/stderr (kept while the server runs)."""
        return self._workdir / "server.log" if self._workdir else None

    def start(self) -> Self:
        """Install if needed, configure, start and wait until Trino answers queries."""
        java_home = find_java_home()
        self.install_report = install(self.cache_dir)
        home = self.install_report.home
        if not self.port:
            from changelake_cli.local_stack import free_port

            self.port = free_port()
        self._workdir = Path(tempfile.mkdtemp(prefix="changelake-trino-"))
        etc = self._workdir / "etc"
        _write_properties(etc / "config.properties", server_properties(self.port, home, etc))
        _write_properties(etc / "catalog" / f"{CATALOG}.properties", catalog_properties(self.aws))
        _write_properties(etc / "log.properties", {"io.trino": "WARN", "io.airlift": "WARN"})
        command = [
            str(java_home / "bin" / "java"),
            *JVM_OPTIONS,
            f"-Dconfig={etc / 'config.properties'}",
            f"-Dlog.levels-file={etc / 'log.properties'}",
            "-cp",
            str(home / "lib" / "*"),
            "io.trino.server.TrinoServer",
        ]
        env = {**os.environ, "JAVA_HOME": str(java_home)}
        started = time.monotonic()
        with (self._workdir / "server.log").open("wb") as out:
            self._process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self._workdir,  # Trino writes var/log/ relative to its working folder
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - async-signal-safe: one prctl
            )
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started
        log.info(
            "trino ready",
            extra={"url": self.url, "start_s": round(self.start_seconds, 2), "home": str(home)},
        )
        return self

    def _wait_ready(self, started: float) -> None:
        from changelake_lake.query.trino_engine import server_info

        assert self._process is not None
        while True:
            code = self._process.poll()
            if code is not None:
                raise TrinoError(f"Trino exited with code {code} while starting:\n{self._tail()}")
            info = server_info(self.url)
            if info is not None and info.get("starting") is False and self._node_active():
                return
            if time.monotonic() - started > self.start_timeout_s:
                raise TrinoError(
                    f"Trino did not start within {self.start_timeout_s:g}s:\n{self._tail()}"
                )
            time.sleep(0.5)

    def _node_active(self) -> bool:
        """True once the coordinator lists itself as an active node: before that, a query
        that reads a table fails with NO_NODES_AVAILABLE."""
        from changelake_lake.query.model import QueryError
        from changelake_lake.query.trino_engine import TrinoEngine

        try:
            result = TrinoEngine(self.url, timeout_s=30).run(
                "SELECT count(*) FROM system.runtime.nodes WHERE state = 'active'"
            )
        except QueryError:
            return False
        return bool(result.rows and result.rows[0][0])

    def _tail(self, lines: int = 40) -> str:
        path = self.log_path
        if path is None or not path.is_file():
            return "(no server log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 20 s) and remove its work folder."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if self._workdir is not None:
            with contextlib.suppress(OSError):
                shutil.rmtree(self._workdir)
            self._workdir = None
