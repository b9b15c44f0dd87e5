"""`changelake local up`: the whole pipeline on 127.0.0.1, no Docker, no AWS account."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from types import FrameType
from typing import Annotated, Any

import typer
from changelake.adapters import aws
from changelake.logs import configure_logging
from changelake.privacy import sample_policy
from changelake.settings import ChangelakeSettings
from changelake_emulator.settings import EmulatorSettings


def shell_env(endpoint: str, settings: ChangelakeSettings) -> list[tuple[str, str]]:
    """The variables a second shell needs to use the local stack (dummy credentials)."""
    return [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", settings.region),
        *aws.LOCAL_CREDENTIALS.items(),
    ]


def stack_options(
    settings: EmulatorSettings,
    *,
    port: int | None = None,
    precision: str | None = None,
    host: str | None = None,
) -> dict[str, Any]:
    """LocalStack arguments: the command line's options, else the ``CHANGELAKE_EMULATOR_*``
    settings that ``python -m changelake_emulator`` honours too (faults, shards, buffering)."""
    chosen = precision or settings.emulator_precision
    if chosen not in ("MILLISECOND", "MICROSECOND"):
        raise typer.BadParameter("use MILLISECOND or MICROSECOND", param_hint="--precision")
    return {
        "port": settings.emulator_port if port is None else port,
        "host": host or settings.emulator_host,
        "precision": chosen,
        "faults": settings.faults(),
        "shards": settings.emulator_shards,
        "firehose_buffer_seconds": settings.emulator_firehose_buffer_seconds,
        "firehose_buffer_mb": settings.emulator_firehose_buffer_mb,
    }


local_app = typer.Typer(help="Run the pipeline locally on the embedded AWS emulator.")

RUNNER_HELP = (
    "Consumer: local (shard threads in this process; no Java needed) or kcl (the real KCL "
    "MultiLangDaemon, as on ECS; needs Java 17+ and the KCL jars)"
)


def require_runner(runner: str) -> None:
    """Exit 2 with one line if ``runner`` is unknown, or is ``kcl`` without Java or jars."""
    from changelake_consumer.kcl_properties import KclUnavailableError, check_available
    from changelake_consumer.settings import ConsumerSettings

    if runner not in ("local", "kcl"):
        raise typer.BadParameter("use local or kcl", param_hint="--runner")
    if runner == "kcl":
        try:
            check_available(ConsumerSettings())
        except KclUnavailableError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc


@local_app.command("up")
def up(  # noqa: PLR0917 - typer options
    port: Annotated[
        int | None,
        typer.Option(
            help="Port of the local AWS endpoint [default: CHANGELAKE_EMULATOR_PORT, 4566]"
        ),
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(
            help="ApproximateCreationDateTime precision: MILLISECOND|MICROSECOND "
            "[default: CHANGELAKE_EMULATOR_PRECISION]"
        ),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(
            help="Interface to bind (0.0.0.0 only inside a container) [default: 127.0.0.1]"
        ),
    ] = None,
    privacy: Annotated[
        bool,
        typer.Option(
            help="Without CHANGELAKE_PRIVACY_POLICY, run with the sample privacy policy"
            " (hash emails and phone, mask birthday)"
        ),
    ] = True,
    with_trino: Annotated[
        bool,
        typer.Option(
            "--with-trino",
            help="Also run Trino (Athena's engine) over the emulator's Glue and S3; downloaded "
            "once from Maven Central into .cache/trino, checksum-verified; needs Java 24+",
        ),
    ] = False,
    runner: Annotated[str, typer.Option(help=RUNNER_HELP)] = "local",
) -> None:
    """Start the emulator, create the resources, run every service until SIGINT/SIGTERM."""
    from changelake_cli.local_stack import LocalStack
    from changelake_cli.trino_server import CATALOG, AwsTarget, TrinoError, TrinoServer

    settings = EmulatorSettings()  # CHANGELAKE_EMULATOR_* as for python -m changelake_emulator
    configure_logging(settings.log_level)
    options = stack_options(settings, port=port, precision=precision, host=host)
    require_runner(runner)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        del frame
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        policy = (settings.privacy_policy or sample_policy(*settings.tables)) if privacy else None
        with contextlib.ExitStack() as running:
            stack = running.enter_context(
                LocalStack(
                    settings=settings,
                    privacy_policy=policy,
                    runner=runner,
                    **options,
                )
            )
            exports = shell_env(stack.endpoint, settings)
            trino_line = ""
            if with_trino:
                print("starting Trino…", file=sys.stderr, flush=True)
                try:
                    trino = running.enter_context(
                        TrinoServer(AwsTarget.emulator(stack.endpoint, settings.region))
                    )
                except TrinoError as exc:
                    print(f"error: {exc}", file=sys.stderr, flush=True)
                    raise typer.Exit(1) from exc
                exports.append(("CHANGELAKE_TRINO_URL", trino.url))
                trino_line = (
                    f"  Trino {trino.url} (catalog {CATALOG}, Glue and S3 of the emulator), "
                    f"started in {trino.start_seconds or 0:.1f}s: "
                    "`changelake query --engine trino …`\n"
                )
            names = ", ".join(s.name for s in stack.services) or "none registered"
            print(
                f"changelake local stack ready at {stack.endpoint}\n"
                f"  tables {', '.join(settings.tables)} -> stream {settings.stream_name} -> "
                f"s3://{settings.lake_bucket} (raw/ via Firehose {settings.firehose_name}); "
                f"services: {names}\n"
                f"{trino_line}"
                "  In a second shell, paste these lines, then run `changelake produce`, "
                "`changelake query` or the AWS CLI against the stack:\n"
                + "".join(f"    export {k}={v}\n" for k, v in exports)
                + "  Ctrl-C to stop",
                flush=True,
            )
            while not stop.wait(0.5):
                pass
            print("stopping…", file=sys.stderr, flush=True)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def register(app: typer.Typer) -> None:
    """Add ``changelake local`` to the CLI."""
    app.add_typer(local_app, name="local")
