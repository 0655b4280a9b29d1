"""`forewarn alert send VULN_ID [VULN_ID …] [--wait]`: the pre-disclosure alert to every approved
registrant; with several ids, one advisory covering them all (one mail per registrant).
`--matching` narrows one vulnerability's alert to the registrants whose products match: it
lists who gets it and who does not, and sends only with `--yes` (app.registry.targeting)."""

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
@click.option(
    "--matching",
    is_flag=True,
    help="only registrants whose declared products match the affected ones: lists who gets it "
    "and who is left out; sends only with --yes",
)
@click.option(
    "--add",
    "added",
    multiple=True,
    metavar="EMAIL",
    help="with --matching: send to this left-out registrant too (repeatable)",
)
@click.option("--yes", is_flag=True, help="with --matching: send to the list shown")
@click.option("--wait", is_flag=True, help="show progress until every delivery has ended")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="with --wait: stop waiting after SECONDS and exit 1 if some are still queued "
    "(they keep being retried, for up to five days)",
)
def alert_send(
    vuln_ids: tuple[str, ...],
    text_file,
    matching: bool,
    added: tuple[str, ...],
    yes: bool,
    wait: bool,
    timeout: float | None,
) -> None:
    from app.core.errors import OperatorError
    from app.registry import alerts
    from app.vulns import lifecycle
    from app.workers import queue, reconcile

    settings = context.settings()
    runtime.open_current_db(settings)
    if (added or yes) and not matching:
        raise OperatorError("--add and --yes go with --matching (without it, everyone gets it)")
    if matching and len(vuln_ids) > 1:
        raise OperatorError(
            "--matching narrows one vulnerability's alert: send the ids one by one to narrow "
            "(an advisory covering several goes to every approved registrant)"
        )
    vulns = [lifecycle.get(vuln_id) for vuln_id in vuln_ids]
    text = text_file.read() if text_file else None
    if matching:
        versions = [_send_matching(vulns[0], added, yes, text, settings)]
    else:
        versions = alerts.send_many(
            vulns, None, f"cli:{context.operator()}", clock.now(), settings, text=text
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


def _send_matching(v, added: tuple[str, ...], yes: bool, text: str | None, settings):
    """Print the narrowed alert's recipients and everyone left out; send only with --yes."""
    from app.core.errors import OperatorError
    from app.registry import targeting

    at = clock.now()
    preview = targeting.preview(v, at)
    by_email = {r.user.email: r for r in preview.left_out}
    back = []
    for email in added:
        found = by_email.get(email.strip().lower())
        if found is None:
            raise OperatorError(
                f"{email} is not an approved registrant left out of this alert "
                "(see the list without --add)"
            )
        back.append(found)
    click.echo(
        f"{v.tracking_id} affects {', '.join(preview.products)}; "
        f"{len(preview.recipients) + len(back)} of {preview.approved} approved registrants "
        "would get it:"
    )
    for r in preview.recipients:
        click.echo(f"  to  {targeting.label(r.registrant)} ({r.why})")
    for r in back:
        click.echo(f"  to  {targeting.label(r)} (added with --add)")
    out = [r for r in preview.left_out if r not in back]
    click.echo(f"left out ({len(out)}):")
    for r in out:
        declared = " ".join((r.products or "").split())[:60] or "no products declared"
        purls = " ".join((r.package_urls or "").split())
        click.echo(f"  out {targeting.label(r)}: {declared}{'; ' + purls if purls else ''}")
    if not yes:
        adds = "".join(f" --add {r.user.email}" for r in back)
        raise OperatorError(
            f"nothing sent: run `forewarn alert send {v.tracking_id} --matching{adds} --yes` "
            "to send to this list (add a left-out one with --add EMAIL)"
        )
    return targeting.send_matching(
        v,
        None,
        f"cli:{context.operator()}",
        at,
        settings,
        shown=preview.key,
        added=[r.id for r in back],
        text=text,
    )
