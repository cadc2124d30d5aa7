"""The `flask` commands: `flask lastfm import` runs the history import in this process; `flask token`
makes or revokes the API token.

Here in web, not at the root of modules/: like the blueprints, these are a way in to the app (Flask's
own `app.cli`), calling the same jobs and access control the routes call."""
from __future__ import annotations

import sys
import time

import click
from flask import current_app
from flask.cli import AppGroup

from ..jobs import JobAlreadyRunning, start_job
from ..sources import lastfm
from .access import api_token

lastfm_cli = AppGroup("lastfm", help="Last.fm history.")


@lastfm_cli.command("import")
@click.argument("limit", required=False, type=click.IntRange(min=1))
@click.option("--no-skip-existing", is_flag=True,
              help="Re-read the whole history instead of only what is newer than the newest stored listen.")
def import_command(limit, no_skip_existing):
    """Import the Last.fm history in this process, with a live progress line."""
    sillon = current_app.extensions["sillon"]
    problem = lastfm.check_credentials(sillon["settings"])
    if problem:
        raise click.ClickException(problem)
    try:
        job_id = start_job("lastfm_history", {"limit": limit, "skip_existing": not no_skip_existing,
                                              "incremental": not no_skip_existing})
    except JobAlreadyRunning as exc:
        raise click.ClickException(f"A Last.fm import is already running (job {exc.job_id}).") from None
    store, runner = sillon["progress_store"], sillon["runner"]
    started = time.monotonic()
    snap = {}
    while True:
        runner.join(job_id, timeout=0.5)
        snap = store.get(job_id) or snap
        c = snap.get("counters", {})
        click.echo(f"\r{snap.get('overall_progress', 0):5.1f}%  batch {c.get('batches', 0)}/{c.get('total_batches', 0)}"
                   f"  imported {c.get('imported', 0):,}  skipped {c.get('skipped', 0):,}  errors {c.get('errors', 0):,}"
                   f"  {snap.get('message', '')[:50]:<50}", nl=False)
        if job_id not in runner.threads:
            break
    click.echo()
    result = snap.get("result") or {}
    click.echo(f"{snap.get('status')}: {snap.get('message')}")
    click.echo(f"  duration {time.monotonic() - started:.1f} s; albums to enrich {result.get('albums_to_enrich', 0):,}; "
               f"total scrobbles {result.get('total_scrobbles', 0):,}")
    if snap.get("status") != "completed":
        sys.exit(1)


token_cli = AppGroup("token", help="The API token scripts send as `Authorization: Bearer <token>`.")


@token_cli.command("create")
def token_create():
    """Make a new API token, replacing the previous one, and print it: it is shown this once."""
    token = api_token.create()
    click.echo("New API token (shown once; only its hash is kept, and the previous token no longer works):")
    click.echo(token)


@token_cli.command("revoke")
def token_revoke():
    """Forget the stored API token (an API_TOKEN setting stays valid until you remove it)."""
    api_token.revoke()
    click.echo("The stored API token is revoked.")


def init_app(app):
    app.cli.add_command(lastfm_cli)
    app.cli.add_command(token_cli)
