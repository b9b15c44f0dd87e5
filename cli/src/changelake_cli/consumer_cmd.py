"""`changelake consumer run [--runner local|kcl]`: the Kinesis → Parquet consumer."""

from __future__ import annotations

import typer

consumer_app = typer.Typer(
    help="Read the change stream and write Parquet to the lake.", no_args_is_help=True
)


@consumer_app.command("run")
def run(
    runner: str = typer.Option(
        "local",
        "--runner",
        help="local: every shard in this process (dev, embedded); kcl: the KCL MultiLangDaemon",
    ),
) -> None:
    """Run the consumer until interrupted (settings: CHANGELAKE_* environment variables)."""
    from changelake_consumer.bootstrap import RUNNERS
    from changelake_consumer.bootstrap import run as run_consumer
    from changelake_consumer.kcl_properties import KclUnavailableError

    if runner not in RUNNERS:
        typer.echo(f"error: --runner must be one of {', '.join(RUNNERS)}", err=True)
        raise typer.Exit(2)
    try:
        code = run_consumer(runner)
    except KclUnavailableError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    raise typer.Exit(code)


@consumer_app.command("properties")
def properties() -> None:
    """Print the KCL .properties rendered from the current settings."""
    from changelake_consumer.kcl_properties import render
    from changelake_consumer.settings import ConsumerSettings

    typer.echo(render(ConsumerSettings()), nl=False)


def register(app: typer.Typer) -> None:
    """Add ``changelake consumer …`` to the CLI."""
    app.add_typer(consumer_app, name="consumer")
