"""Install amazon-kclpy's pure-Python interface into the current venv without the KCL jars.

Why: `pip install amazon-kclpy` runs a setup.py step that downloads the MultiLangDaemon jars
from Maven Central, which this project's CI cannot reach. Tests only need the Python side of
the MultiLang protocol (the test plays the Java daemon), so we fetch the pinned source
distribution from PyPI, verify its sha256, and copy the `amazon_kclpy` package (no jars) into
site-packages with a minimal dist-info. Container images install the real package instead and
fail their build when the jars are missing (services/consumer/Dockerfile).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import sys
import sysconfig
import tarfile
import urllib.request
from pathlib import Path

VERSION = "3.2.0"
SHA256 = "62e81cc84714c920fe6aa5d61837b298fe7e01f6326dcb564b12ab8e6c4aca4e"
INDEX = os.environ.get("CHANGELAKE_KCLPY_INDEX", "https://pypi.org/simple/amazon-kclpy/")
CACHE = Path(__file__).resolve().parent.parent / ".cache" / f"amazon_kclpy-{VERSION}.tar.gz"


def _log(msg: str) -> None:
    print(f"install_kclpy_nojars: {msg}", file=sys.stderr)


def _sdist_bytes() -> bytes:
    if CACHE.exists():
        data = CACHE.read_bytes()
        if hashlib.sha256(data).hexdigest() == SHA256:
            return data
    with urllib.request.urlopen(INDEX, timeout=60) as resp:
        page = resp.read().decode()
    name = f"amazon_kclpy-{VERSION}.tar.gz"
    links = [u for u in re.findall(r'href="([^"]+)"', page) if name in u]
    if not links:
        raise SystemExit(f"{name} not found on {INDEX}")
    url = links[0].split("#", 1)[0]
    with urllib.request.urlopen(url, timeout=120) as resp:
        data = resp.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"sha256 mismatch for {url}: {digest} != {SHA256}")
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    CACHE.write_bytes(data)
    return data


def main() -> int:
    """Install the package unless this exact version is already present."""
    site = Path(sysconfig.get_paths()["purelib"])
    dist_info = site / f"amazon_kclpy-{VERSION}.dist-info"
    if dist_info.exists() and (site / "amazon_kclpy" / "kcl.py").exists():
        return 0
    data = _sdist_bytes()
    target = site / "amazon_kclpy"
    shutil.rmtree(target, ignore_errors=True)
    records: list[str] = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        prefix = f"amazon_kclpy-{VERSION}/amazon_kclpy/"
        for member in tar.getmembers():
            if not member.isfile() or not member.name.startswith(prefix):
                continue
            rel = member.name[len(prefix) :]
            if not rel.endswith(".py"):
                continue  # the jars/ folder is exactly what we leave out
            out = target / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            extracted = tar.extractfile(member)
            assert extracted is not None
            out.write_bytes(extracted.read())
            records.append(f"amazon_kclpy/{rel},,")
    dist_info.mkdir(exist_ok=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: amazon-kclpy\nVersion: {VERSION}\n"
        "Summary: amazon-kclpy Python interface, installed without the KCL jars (tests only)\n"
        "Requires-Dist: boto3\n"
    )
    (dist_info / "INSTALLER").write_text("changelake-nojars\n")
    records += [f"{dist_info.name}/METADATA,,", f"{dist_info.name}/INSTALLER,,"]
    records.append(f"{dist_info.name}/RECORD,,")
    (dist_info / "RECORD").write_text("\n".join(records) + "\n")
    _log(f"installed amazon_kclpy {VERSION} (no jars) into {site}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
