"""`forewarn alert send VULN_ID [VULN_ID …] [--wait]`: the pre-disclosure alert to every approved
registrant; with several ids, one advisory covering them all (one mail per registrant)."""

import contextlib
import time

import click
import redis

import app.cli.context as context
from app.cli.context import cli
from app.core import clock
from app.workers import runtime


@cli.group(help="Pre-disclosure alerts to approved registrants.")
def alert() -> None:
    pass


@alert.command(
    "send",
    help="Queue the next advisory version to every approved registrant; with several ids, "
    "one advisory covering them all (the next version of each, one mail per registrant).",
)
@click.argument("vuln_ids", nargs=-1, required=True, metavar="VULN_ID [VULN_ID ...]")
@click.option(
    "--text-file",
    type=click.File("r"),
    default=None,
    help="the advisory text (with several ids: a note at the top of the one mail)",
)
@click.option("--wait", is_flag=True, help="show progress until every delivery has ended")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="with --wait: stop waiting after SECONDS and exit 1 if some are still queued "
    "(they keep being retried, for up to five days)",
)
def alert_send(vuln_ids: tuple[str, ...], text_file, wait: bool, timeout: float | None) -> None:
    from app.core.errors import OperatorError
    from app.registry import alerts
    from app.vulns import lifecycle
    from app.workers import queue, reconcile

    settings = context.settings()
    runtime.open_current_db(settings)
    vulns = [lifecycle.get(vuln_id) for vuln_id in vuln_ids]
    versions = alerts.send_many(
        vulns,
        None,
        f"cli:{context.operator()}",
        clock.now(),
        settings,
        text=text_file.read() if text_file else None,
    )
    advisory = versions[0]  # a bundle's deliveries all carry its first version
    # Now rather than at the reconciler's next pass (which queues them within a minute anyway).
    with contextlib.suppress(redis.RedisError, OSError):
        reconcile.queue_due_deliveries(queue.connect(runtime.redis_url(settings)), clock.now())
    counts = alerts.progress(advisory)
    total = sum(counts.values())
    plural = "s" if total != 1 else ""
    named = ", ".join(f"{a.vulnerability.tracking_id} v{a.version}" for a in versions)
    how = " in one advisory" if len(versions) > 1 else ""
    click.echo(f"{named} queued to {total} registrant{plural}{how}", err=wait)
    if not wait:
        return
    deadline = None if timeout is None else time.monotonic() + timeout
    with click.progressbar(
        length=total, label="Sending", file=click.get_text_stream("stderr")
    ) as bar:
        done = 0
        while done < total:
            counts = alerts.progress(advisory)
            now_done = total - counts["queued"]
            bar.update(now_done - done)
            done = now_done
            if done < total:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                time.sleep(0.5)  # polling the database while the workers send
    click.echo(" ".join(f"{state} {n}" for state, n in counts.items()))
    if counts["queued"]:
        raise OperatorError(
            f"{counts['queued']} of {total} still queued after {timeout:g} s "
            "(a relay refusing them for now, or no worker running?); they keep being retried"
        )
