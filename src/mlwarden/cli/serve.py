"""`mlwarden serve --config mlwarden.yaml [--host H] [--port P]`: run the gateway."""

from __future__ import annotations

from pathlib import Path

import click

from mlwarden.errors import PolicyFileError


@click.command("serve")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("mlwarden.yaml"),
    show_default=True,
    help="The policy file with the gateway:, identity:, authorization: sections.",
)
@click.option("--host", default=None, help="Listen address (default: gateway.host).")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Listen port.")
def serve_command(config_path: Path, host: str | None, port: int | None) -> int:
    """Serve the configured models behind every control (Open Inference Protocol v2)."""
    from mlwarden.gateway import Gateway, make_server
    from mlwarden.policy import load_policy

    policy = load_policy(config_path)
    if policy.gateway is None:
        raise PolicyFileError(f"{config_path} has no 'gateway:' section: nothing to serve")
    base = config_path.parent
    gateway = Gateway.from_policy(policy, base_dir=base)
    config = policy.gateway
    listen_host = host or config.host
    listen_port = config.port if port is None else port
    scheme = "https" if config.tls is not None else "http"
    click.echo(f"mlwarden gateway on {scheme}://{listen_host}:{listen_port}", err=True)
    server = make_server(
        gateway, host=listen_host, port=listen_port, tls=config.tls, base_dir=base, log_level="info"
    )
    server.run()
    return 0 if server.started else 2
