"""``kray server``: Ray, the executor and the REST API in one command, and API tokens.

* ``kray server local``: an embedded Ray on 127.0.0.1; the DuckDB file, storage and
  configuration under ``--data-dir``; the API on ``--host``/``--port`` (127.0.0.1:8080).
* ``kray server start --address auto``: the same, joining an existing Ray cluster (the executor
  is pinned to its head node; use shared storage, ``s3://`` or ``gs://``, across nodes).
* ``--flow-path DIR`` deploys every flow of a folder at start, then keeps them in sync while the
  files change (a changed file is a new revision, a deleted one deletes its flow). Flows edited
  through the API stay as they are until their file changes.
* ``kray server token create NAME``: a new API token, printed once; only its hash is kept.

This module is the composition root: it is the one place in ``kray`` that imports the API.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from kray.config import ConfigError, Settings, create_token, read_tokens, revoke_token
from kray.errors import FlowNotFound, FlowValidationError, KrayError

Echo = Callable[[str], None]
FLOW_SUFFIXES = (".yaml", ".yml")


class FlowSync:
    """Keeps the flows of a folder deployed: at start, then on every file change."""

    def __init__(self, executor: Any, folder: Path, echo: Echo):
        self.executor = executor
        self.folder = folder.resolve()
        self.echo = echo
        self.deployed: dict[Path, tuple[str, str]] = {}  # file -> (namespace, id)

    def files(self) -> list[Path]:
        return sorted(p for p in self.folder.rglob("*")
                      if p.suffix in FLOW_SUFFIXES and p.is_file())

    async def deploy_all(self) -> None:
        for path in self.files():
            await self.deploy(path)

    async def deploy(self, path: Path) -> None:
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            self.echo(f"flow sync: cannot read {path}: {e}")
            return
        try:
            flow = await self.executor.deploy.remote(source, str(path))
        except FlowValidationError as e:
            for issue in e.issues:
                self.echo(f"flow sync: {issue}")
            return
        uid = (flow["namespace"], flow["id"])
        previous = self.deployed.get(path)
        self.deployed[path] = uid
        self.echo(f"flow sync: {uid[0]}.{uid[1]} revision {flow['revision']} from {path}")
        if previous is not None and previous != uid:
            await self._delete_if_orphan(previous)

    async def removed(self, path: Path) -> None:
        uid = self.deployed.pop(path, None)
        if uid is not None:
            await self._delete_if_orphan(uid)

    async def _delete_if_orphan(self, uid: tuple[str, str]) -> None:
        if uid in self.deployed.values():
            return  # another file defines it now
        try:
            await self.executor.delete_flow.remote(*uid)
            self.echo(f"flow sync: {uid[0]}.{uid[1]} deleted (its file is gone)")
        except FlowNotFound:
            pass

    async def watch(self, stop: asyncio.Event) -> None:
        from watchfiles import Change, awatch

        async for changes in awatch(self.folder, stop_event=stop, recursive=True,
                                    watch_filter=lambda _, p: p.endswith(FLOW_SUFFIXES)):
            for change, name in sorted(changes, key=lambda c: c[1]):
                path = Path(name)
                if change == Change.deleted or not path.is_file():
                    await self.removed(path)
                else:
                    await self.deploy(path)


def _start_ray(address: str | None) -> bool:
    """Join ``address``, or start an embedded Ray on 127.0.0.1; True when this call
    started it."""
    import ray

    kwargs: dict[str, Any] = dict(namespace="kray", log_to_driver=False,
                                  logging_level="WARNING")
    if address:
        ray.init(address=address, **kwargs)
        return False
    from kray.runner import loopback_only
    loopback_only()
    ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=False, **kwargs)
    return True


def serve(settings: Settings, *, address: str | None = None, flow_path: Path | None = None,
          echo: Echo = print) -> None:
    """Run the server until interrupted (Ctrl-C or SIGTERM)."""
    import ray

    from kray.executor import executor_actor

    password = settings.ensure_admin()
    if password is not None:
        echo(f"kray: generated credentials (shown once; only a hash is stored in "
             f"{settings.auth_file}):\n  user: admin\n  password: {password}\n"
             "  set KRAY_BASIC_AUTH=user:password or auth.basic in config.yaml to choose "
             "your own")
    elif settings.auth.enabled and not settings.auth.configured:
        raise KrayError("auth is on but no credentials are configured")
    if not settings.auth.enabled:
        echo("kray: WARNING auth is disabled: anyone who reaches the port controls kray")
    started = _start_ray(address)
    try:
        envs = {k[4:].lower(): v for k, v in os.environ.items() if k.startswith("ENV_")}
        executor = executor_actor(settings.executor_config(envs=envs))
        actual = ray.get(executor.ping.remote())["config"]
        if Path(actual["data_dir"]).resolve() != settings.data_dir:
            echo(f"kray: WARNING the cluster's executor already runs with data dir "
                 f"{actual['data_dir']}, not {settings.data_dir}")
        _run_until_stopped(_run(settings, executor, flow_path, echo))
        echo("kray: stopped")
    finally:
        if started:
            ray.shutdown()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _run_until_stopped(main: Any) -> None:
    """Run the server; Ctrl-C and SIGTERM stop it cleanly. uvicorn shuts down gracefully on
    either, then raises the signal again for the previous handler: ours turns SIGTERM into
    the same clean stop as Ctrl-C (so Ray is shut down), instead of the default kill."""
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if in_main else None
    try:
        asyncio.run(main)
    except KeyboardInterrupt:
        pass
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


async def _run(settings: Settings, executor: Any, flow_path: Path | None, echo: Echo) -> None:
    import uvicorn

    from kray.api.app import create_app

    app = create_app(settings, executor=executor)
    server = uvicorn.Server(uvicorn.Config(app, host=settings.host, port=settings.port,
                                           log_level="warning", access_log=False))
    stop = asyncio.Event()
    watcher = None
    if flow_path is not None:
        sync = FlowSync(executor, flow_path, echo)
        await sync.deploy_all()
        watcher = asyncio.create_task(sync.watch(stop))
    echo(f"kray: API on http://{settings.host}:{settings.port} (data in {settings.data_dir})")
    try:
        await server.serve()
    finally:
        stop.set()
        if watcher is not None:
            await watcher


# -- the command -------------------------------------------------------------------------
def _options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("--data-dir", envvar="KRAY_DATA_DIR", default=None,
                     help="The data folder (DuckDB file, storage, config.yaml) [./.kray]."),
        click.option("--config", "config_file", envvar="KRAY_CONFIG", default=None,
                     type=click.Path(dir_okay=False),
                     help="A configuration file [<data-dir>/config.yaml]."),
        click.option("--host", default=None, help="Address to listen on [127.0.0.1]."),
        click.option("--port", default=None, type=click.IntRange(1, 65535),
                     help="Port to listen on [8080]."),
        click.option("--flow-path", default=None, type=click.Path(file_okay=False,
                                                                  exists=True),
                     help="Deploy the flows of this folder and keep them in sync."),
    ]):
        fn = option(fn)
    return fn


def _settings(data_dir: str | None, config_file: str | None, host: str | None,
              port: int | None) -> Settings:
    try:
        return Settings.load(data_dir, config_file=config_file, host=host, port=port)
    except ConfigError as e:
        for issue in e.issues:
            click.echo(f"config: {issue}", err=True)
        sys.exit(2)


@click.group()
def server() -> None:
    """Run the kray server (REST API), or manage its API tokens."""


@server.command("local")
@_options
def local(data_dir: str | None, config_file: str | None, host: str | None, port: int | None,
          flow_path: str | None) -> None:
    """Embedded Ray on 127.0.0.1, the executor and the API."""
    settings = _settings(data_dir, config_file, host, port)
    serve(settings, flow_path=Path(flow_path) if flow_path else None, echo=_echo)


@server.command("start")
@_options
@click.option("--address", default="auto", show_default=True, envvar="RAY_ADDRESS",
              help="The Ray cluster to join.")
def start(data_dir: str | None, config_file: str | None, host: str | None, port: int | None,
          flow_path: str | None, address: str) -> None:
    """The executor and the API on an existing Ray cluster."""
    settings = _settings(data_dir, config_file, host, port)
    serve(settings, address=address, flow_path=Path(flow_path) if flow_path else None,
          echo=_echo)


@server.group("token")
def token() -> None:
    """API tokens (bearer) for machines."""


@token.command("create")
@click.argument("name")
@click.option("--data-dir", envvar="KRAY_DATA_DIR", default=".kray", show_default=True)
def token_create(name: str, data_dir: str) -> None:
    """Create a token: printed once, only its hash is stored (a running server sees it
    within a second)."""
    try:
        click.echo(create_token(data_dir, name))
    except KrayError as e:
        raise click.ClickException(str(e)) from None


@token.command("list")
@click.option("--data-dir", envvar="KRAY_DATA_DIR", default=".kray", show_default=True)
def token_list(data_dir: str) -> None:
    """The tokens' names and creation dates."""
    for record in read_tokens(Path(data_dir) / "tokens.json"):
        click.echo(f"{record.name}\t{record.created or ''}")


@token.command("revoke")
@click.argument("name")
@click.option("--data-dir", envvar="KRAY_DATA_DIR", default=".kray", show_default=True)
def token_revoke(name: str, data_dir: str) -> None:
    """Revoke a token by name."""
    if not revoke_token(data_dir, name):
        raise click.ClickException(f"no token named {name!r}")
    click.echo(f"revoked {name}")


def _echo(text: str) -> None:
    click.echo(text, err=True)
    sys.stderr.flush()


__all__ = ["server", "serve", "FlowSync"]
