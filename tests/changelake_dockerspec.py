"""Read the container files the way Docker and Compose do, for the tests that check them.

Not a test module: tests/test_dockerfiles.py, tests/test_compose.py and
tests/test_deploy_contract.py load it by path (pytest runs with ``--import-mode=importlib``).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[1]
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "pyproject.toml").is_file())


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined."""

    keyword: str
    value: str
    stage: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form CMD/ENTRYPOINT/HEALTHCHECK CMD, else ``None``."""
        text = self.value
        if self.keyword == "HEALTHCHECK":
            match = re.search(r"\bCMD\s+(\[.*\])\s*\Z", text, re.S)
            text = match.group(1) if match else ""
        text = text.strip()
        if not text.startswith("["):
            return None
        parsed = json.loads(text)
        assert isinstance(parsed, list)
        return [str(p) for p in parsed]

    def flags(self) -> dict[str, str]:
        """``--name=value`` flags before the arguments (COPY --from=…, --chmod=…)."""
        found: dict[str, str] = {}
        for token in shlex.split(self.value):
            if not token.startswith("--"):
                break
            name, _, value = token[2:].partition("=")
            found[name] = value
        return found

    def args(self) -> list[str]:
        """The shell-split arguments after the flags."""
        tokens = shlex.split(self.value)
        return [t for t in tokens if not t.startswith("--")] if tokens else []


@dataclass(frozen=True)
class Stage:
    """A build stage: ``FROM <image> [AS <name>]``.

    ``image`` is the base with a global ``ARG``'s default substituted; ``base_arg`` names
    that ARG (``FROM ${PYTHON_BASE}``), ``None`` for a literal base or an earlier stage.
    """

    name: str
    image: str
    instructions: list[Instruction] = field(default_factory=list)
    base_arg: str | None = None

    def last(self, keyword: str) -> Instruction | None:
        """The stage's last instruction of ``keyword`` (Docker keeps the last CMD, USER, …)."""
        found = [i for i in self.instructions if i.keyword == keyword]
        return found[-1] if found else None

    def all(self, keyword: str) -> list[Instruction]:
        """Every instruction of ``keyword`` in the stage."""
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass(frozen=True)
class Dockerfile:
    """A parsed Dockerfile: its stages in order (the last one is the default target)."""

    path: Path
    stages: list[Stage]

    def stage(self, name: str | None) -> Stage:
        """A stage by name; ``None`` is the default target (the last stage)."""
        if name is None:
            return self.stages[-1]
        matches = [s for s in self.stages if s.name == name]
        assert matches, f"{self.path}: no stage {name!r}"
        return matches[0]

    @property
    def instructions(self) -> list[Instruction]:
        """Every instruction of every stage."""
        return [i for s in self.stages for i in s.instructions]


def parse_dockerfile(path: Path) -> Dockerfile:
    """Parse a Dockerfile: comments dropped, backslash continuations joined, stages split."""
    logical: list[tuple[int, str]] = []
    buffer = ""
    start = 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        buffer += stripped
        logical.append((start, buffer))
        buffer = ""
    assert not buffer, f"{path}: dangling line continuation"
    stages: list[Stage] = []
    global_args: dict[str, str] = {}
    for number, text in logical:
        keyword, _, value = text.partition(" ")
        keyword = keyword.upper()
        value = value.strip()
        if keyword == "FROM":
            parts = value.split()
            image = parts[0]
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else str(len(stages))
            arg = re.fullmatch(r"\$\{?(\w+)\}?", image)
            if arg:
                assert arg.group(1) in global_args, f"{path}: FROM {image} without a default"
                image = global_args[arg.group(1)]
            stages.append(Stage(name, image, base_arg=arg.group(1) if arg else None))
            continue
        if not stages:
            if keyword == "ARG" and "=" in value:  # a global ARG: usable in FROM lines
                arg_name, _, default = value.partition("=")
                global_args[arg_name.strip()] = default.strip()
            continue  # syntax / ARG before the first FROM
        stages[-1].instructions.append(Instruction(keyword, value, stages[-1].name, number))
    return Dockerfile(path, stages)


def dockerfile(service: str) -> Dockerfile:
    """The parsed Dockerfile of one service."""
    return parse_dockerfile(ROOT / "services" / service / "Dockerfile")


# ---- .dockerignore, as Docker applies it -------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    # Docker: Go filepath.Match per path element, plus "**" for any number of directories.
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
            continue
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        char = pattern[i]
        out += "[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char)
        i += 1
    return re.compile(out + r"\Z")


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(negated, regex) of each .dockerignore line, in order."""
    rules = []
    for raw in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        line = line.lstrip("!").strip().strip("/")
        rules.append((negated, _pattern_regex(os.path.normpath(line))))
    return rules


def in_build_context(relpath: str, rules: list[tuple[bool, re.Pattern[str]]] | None = None) -> bool:
    """Whether Docker sends ``relpath`` (relative to the repository root) to the daemon.

    Like Docker's matcher: a pattern matches a path or any of its parent folders; the last
    matching pattern decides, a ``!`` pattern re-including.
    """
    rules = dockerignore_rules() if rules is None else rules
    parts = relpath.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negated, regex in rules:
        if any(regex.match(p) for p in prefixes):
            excluded = not negated
    return not excluded


def build_context_files() -> Iterator[str]:
    """Every file of the repository that Docker would send as the build context."""
    rules = dockerignore_rules()
    skip_dirs = {".git", ".venv", ".tools", "node_modules", "cdk.out", ".mypy_cache"}
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in skip_dirs]
        for name in files:
            rel = os.path.relpath(os.path.join(folder, name), ROOT).replace(os.sep, "/")
            if in_build_context(rel, rules):
                yield rel


# ---- compose -------------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    """docker-compose.yml with its anchors and merge keys resolved (as Compose reads it)."""
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A compose service's environment as a dict of strings (list or mapping form)."""
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def command(service_name: str, service: dict[str, Any]) -> list[str]:
    """The command a compose service runs: its ``command``, else its image's CMD."""
    if "command" in service:
        cmd = service["command"]
        return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]
    target = service.get("build", {}).get("target")
    cmd_instr = dockerfile(service_name).stage(target).last("CMD")
    assert cmd_instr is not None, f"{service_name}: neither command nor CMD"
    exec_form = cmd_instr.exec_form()
    assert exec_form is not None, f"{service_name}: CMD must be exec form"
    return exec_form


# ---- settings classes ------------------------------------------------------------------------


def settings_class(service: str) -> type[BaseSettings]:
    """The settings class a service reads: the ChangelakeSettings subclass in its settings module.

    A service without a ``settings`` module (the emulator) reads the shared base class.
    """
    from changelake.settings import ChangelakeSettings

    module_name = f"changelake_{service}.settings"
    if importlib.util.find_spec(f"changelake_{service}") is None:
        raise AssertionError(f"package changelake_{service} not importable")
    if importlib.util.find_spec(module_name) is None:
        return ChangelakeSettings
    module = importlib.import_module(module_name)
    classes = [
        obj
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, ChangelakeSettings) and obj.__module__ == module_name
    ]
    assert len(classes) == 1, f"{module_name}: expected one settings class, found {classes}"
    return classes[0]


def env_names(cls: type[BaseSettings]) -> dict[str, str]:
    """CHANGELAKE_* variable name → field name (prefix + field name upper-cased)."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    return {f"{prefix}{name}".upper(): name for name in cls.model_fields}


def required_env_names(cls: type[BaseSettings]) -> set[str]:
    """The variables of fields without a default."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    return {f"{prefix}{n}".upper() for n, f in cls.model_fields.items() if f.is_required()}


def load_settings(cls: type[BaseSettings], env: dict[str, str]) -> BaseSettings:
    """Instantiate ``cls`` from exactly ``env`` (other CHANGELAKE_* variables hidden)."""
    saved = {k: v for k, v in os.environ.items() if k.upper().startswith("CHANGELAKE_")}
    try:
        for key in saved:
            del os.environ[key]
        os.environ.update({k: v for k, v in env.items() if k.startswith("CHANGELAKE_")})
        return cls()
    finally:
        for key in [k for k in os.environ if k.upper().startswith("CHANGELAKE_")]:
            del os.environ[key]
        os.environ.update(saved)


def module_runnable(module: str) -> bool:
    """``python -m module`` would run: the module (or its ``__main__``) can be found."""
    spec = importlib.util.find_spec(module)
    if spec is None:
        return False
    if spec.submodule_search_locations is not None:  # a package: needs __main__
        return importlib.util.find_spec(f"{module}.__main__") is not None
    return True


def handler(dotted: str) -> Any:
    """Resolve ``package.module.function`` (a Lambda handler string)."""
    module_name, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module_name), attr)


# ---- images, writable paths, the container engine ---------------------------------------------


@dataclass(frozen=True)
class Image:
    """One image `make images` builds (a line of containers/images.txt)."""

    tag: str
    dockerfile: str
    target: str | None

    @property
    def service(self) -> str:
        """The service folder the Dockerfile belongs to."""
        return Path(self.dockerfile).parent.name

    def stage(self) -> Stage:
        """The stage the image is built from."""
        return parse_dockerfile(ROOT / self.dockerfile).stage(self.target)


def images() -> list[Image]:
    """Every image of containers/images.txt, in build order."""
    found = []
    for raw in (ROOT / "containers" / "images.txt").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        tag, dockerfile, target = line.split()
        found.append(Image(tag, dockerfile, None if target == "-" else target))
    return found


def volumes(stage: Stage) -> list[str]:
    """The paths a stage declares as VOLUMEs (JSON or plain form), in order."""
    paths: list[str] = []
    for instr in stage.all("VOLUME"):
        text = instr.value.strip()
        paths += json.loads(text) if text.startswith("[") else text.split()
    return paths


def container_engine() -> str:
    """docker or podman, as `make images` picks it (scripts/containers.sh engine)."""
    proc = subprocess.run(
        [str(ROOT / "scripts" / "containers.sh"), "engine"],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return proc.stdout.strip()


def engine_env() -> dict[str, str]:
    """The environment the engine runs with (podman: the project's containers.conf)."""
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(ROOT / "containers" / "containers.conf"))
    return env


def engine_run(
    engine: str, *args: str, check: bool = True, timeout: float = 300, with_stderr: bool = False
) -> str:
    """Run the container engine; its stdout (plus stderr: ``logs`` writes there)."""
    proc = subprocess.run(
        [engine, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=engine_env(),
    )
    if check:
        assert proc.returncode == 0, f"{engine} {' '.join(args)}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr if with_stderr else proc.stdout
