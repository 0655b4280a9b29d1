"""`forewarn vulns ...` and `forewarn release-notes`."""

from pathlib import Path

import click

import app.cli.context as context
from app.cli.context import cli
from app.core import clock
from app.core.errors import OperatorError
from app.workers import runtime


@cli.group(help="Vulnerabilities: list, show, create, change.")
def vulns() -> None:
    pass


def _cli_actor():
    from app.vulns.lifecycle import Actor

    return Actor(None, f"cli:{context.operator()}")


@vulns.command("list", help="Every vulnerability, newest first.")
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
def vulns_list(as_json: bool) -> None:
    import json

    from app.core import oneline
    from app.models import Vulnerability
    from app.vulns import views

    runtime.open_current_db(context.settings())
    rows = [views.summary(v) for v in Vulnerability.select().order_by(Vulnerability.id.desc())]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:  # one line each, whatever an old title holds
        click.echo(
            f"{row['id']:<16} {row['status']:<9} {row['cve'] or '-':<15} "
            f"{(row['embargo_until'] or '-')[:16]:<16} {oneline.flattened(row['title'])}"
        )


@vulns.command("show", help="Everything about one vulnerability, correspondence included.")
@click.argument("vuln_id")
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
def vulns_show(vuln_id: str, as_json: bool) -> None:
    import json

    from app.vulns import lifecycle as domain
    from app.vulns import views

    runtime.open_current_db(context.settings())
    shown = views.details(domain.get(vuln_id))
    if as_json:
        click.echo(json.dumps(shown, indent=2))
        return
    for key in (
        "id",
        "title",
        "status",
        "cve",
        "assignee",
        "reported_at",
        "fix_due",
        "embargo_until",
        "severity",
        "cvss_score",
        "cwe",
        "affected",
        "credits",
    ):
        click.echo(f"{key + ':':<15} {shown[key] if shown[key] not in (None, '') else '-'}")
    click.echo(f"{'case:':<15} {shown['case']} ({', '.join(shown['case_vulnerabilities'])})")
    click.echo(f"{'findings:':<15} {' '.join(shown['findings']) or '-'}")
    if shown["duplicate_of"]:
        click.echo(f"{'duplicate of:':<15} {shown['duplicate_of']}")
    if shown["duplicates"]:
        click.echo(f"{'duplicates:':<15} {' '.join(shown['duplicates'])}")
    click.echo(f"\n{shown['description'] or '(no description)'}")
    for entry in shown["correspondence"]:
        arrow = "to reporter"
        if entry["direction"] == "in":
            arrow = _from_whom(entry)
        click.echo(f"\n--- {entry['at']} {arrow}, {entry['signature_status']} ---")
        click.echo(entry["text"])
        for attached in entry["attached_text"]:
            click.echo(f"\n--- attached: {attached['name']} ---\n{attached['text']}")
        for f in entry["attachments"]:
            about = f"{f['content_type']}, {f['size']} bytes"
            click.echo(f"attachment: {f['name']} ({about}) sha256 {f['sha256']}")


@vulns.command("attachment", help="The bytes of one attachment (decrypted) on stdout.")
@click.argument("vuln_id")
@click.argument("sha256")
def vulns_attachment(vuln_id: str, sha256: str) -> None:
    from app.reports import attachments
    from app.vulns import lifecycle as domain

    runtime.open_current_db(context.settings())
    found = attachments.find(domain.get(vuln_id), sha256)
    stdout = click.get_binary_stream("stdout")
    stdout.write(bytes(found.content))
    stdout.flush()


def _from_whom(entry: dict) -> str:
    """Who an inbound entry is from, as the thread shows it (see app.vulns.views.Sender)."""
    if not entry["sender"]:
        return "from a sender not recorded"
    if not entry["from_reporter"]:
        return f"from {entry['sender']}, not the reporter"
    signed = ", signed by the reporter's key" if entry["signed_by_reporter"] else ""
    return f"from the reporter {entry['sender']}{signed}"


@vulns.command("create", help="Open a vulnerability; prints its tracking id.")
@click.option("--title", required=True)
@click.option("--description-file", type=click.File("r"), required=True)
@click.option("--embargo-until", default=None, help="ISO 8601, UTC (default: the policy's)")
def vulns_create(title: str, description_file, embargo_until: str | None) -> None:
    from datetime import time

    from app.vulns import embargo
    from app.vulns import lifecycle as domain

    settings = context.settings()
    runtime.open_current_db(settings)
    until = None
    if embargo_until:
        until = embargo.parse_instant(embargo_until, time(settings.publication_hour))
    v = domain.create(title, description_file.read(), _cli_actor(), clock.now(), settings, until)
    click.echo(v.tracking_id)


@vulns.command(
    "split", help="New vulnerabilities in the same case, one per --title; prints their ids."
)
@click.argument("vuln_id")
@click.option("--title", "titles", multiple=True, required=True, help="one per new vulnerability")
def vulns_split(vuln_id: str, titles: tuple[str, ...]) -> None:
    from app.vulns import lifecycle as domain
    from app.vulns import split

    settings = context.settings()
    runtime.open_current_db(settings)
    made = split.split(domain.get(vuln_id), list(titles), _cli_actor(), clock.now(), settings)
    for new in made:
        click.echo(new.tracking_id)


@vulns.command(
    "duplicate", help="Mark ID a duplicate of another (--of), or track it on its own (--undo)."
)
@click.argument("vuln_id")
@click.option("--of", "original_id", default=None, metavar="OTHER", help="the id it duplicates")
@click.option("--reason", default="", help="why (kept with the team; not sent to the reporter)")
@click.option("--credit", is_flag=True, help="credit ID's reporter on OTHER too")
@click.option("--undo", is_flag=True, help="track ID on its own again, as before the mark")
def vulns_duplicate(
    vuln_id: str, original_id: str | None, reason: str, credit: bool, undo: bool
) -> None:
    import contextlib

    import redis

    from app.vulns import duplicates
    from app.vulns import lifecycle as domain
    from app.workers import queue, reconcile

    if undo == (original_id is not None):
        raise OperatorError(
            "give --of OTHER to mark it a duplicate of OTHER, or --undo to track it on its own"
        )
    if undo and (reason or credit):
        raise OperatorError("--reason and --credit go with --of, not with --undo")
    settings = context.settings()
    runtime.open_current_db(settings)
    v = domain.get(vuln_id)
    if undo:
        done = duplicates.undo(v, _cli_actor(), clock.now(), settings)
    else:
        original = domain.get(original_id)
        done = duplicates.mark(v, original, reason, credit, _cli_actor(), clock.now(), settings)
    connection = queue.connect(runtime.redis_url(settings))
    said = _lift_or_schedule(connection, done.vulnerability, settings)
    with contextlib.suppress(redis.RedisError, OSError):  # the reconciler sends it otherwise
        reconcile.queue_due_deliveries(connection, clock.now())
    v, original = done.vulnerability, done.original
    told = "; its reporter is told" if done.reporter_told else "; it has no reporter to tell"
    if undo:
        removed = f"; no longer credited on {original.tracking_id}" if done.credit else ""
        click.echo(f"{v.tracking_id}: tracked on its own again ({v.status}){removed}{told}{said}")
        return
    if credit:
        how = "credited" if done.credit else "already credited"
        told += f"; {how} on {original.tracking_id}"
    click.echo(f"{v.tracking_id}: duplicate of {original.tracking_id}, rejected{told}")
    if v.cve_id:
        click.echo(
            f"{v.cve.cve_id} stays with {v.tracking_id}; if it is not to be used: "
            f"forewarn cve retire {v.cve.cve_id} --reason 'duplicate of {original.tracking_id}'"
        )


@vulns.command(
    "withdraw",
    help="A published vulnerability proved not to be one: its page, feed entry and records "
    "say withdrawn with the reason (nothing is deleted); OSV withdrawn, CVE record rejected.",
)
@click.argument("vuln_id")
@click.option("--reason", required=True, help="why it is not a vulnerability (shown publicly)")
def vulns_withdraw(vuln_id: str, reason: str) -> None:
    from app.vulns import lifecycle as domain
    from app.vulns import withdrawal

    settings = context.settings()
    runtime.open_current_db(settings)
    at = clock.now()
    v = withdrawal.withdraw(domain.get(vuln_id), reason, _cli_actor(), at)
    _revised(v, at, settings)  # its records go out again now (else the reconciler sends them)
    cve = f"; {v.cve.cve_id} is rejected" if v.cve_id else ""
    click.echo(f"{v.tracking_id}: withdrawn{cve}; its page and records say so")


@vulns.command("set", help="Change one field with the web form's rules and audit.")
@click.argument("vuln_id")
@click.argument("field")
@click.argument("value")
@click.option("--reason", default=None, help="why (where the rules ask for one)")
@click.option(
    "--only",
    is_flag=True,
    help="embargo_until: move this vulnerability alone, not the others of its case with the "
    "same end",
)
def vulns_set(vuln_id: str, field: str, value: str, reason: str | None, only: bool) -> None:
    from app.disclosure import embargo_change
    from app.vulns import lifecycle as domain
    from app.workers import queue

    settings = context.settings()
    runtime.open_current_db(settings)
    v = domain.get(vuln_id)
    reason = reason or domain.OPERATOR_REASON
    lifting = field in ("embargo_until", "status")
    connection = queue.connect(runtime.redis_url(settings)) if lifting else None
    if only and field != "embargo_until":
        raise OperatorError("--only goes with embargo_until alone; drop it")
    if field == "embargo_until":
        until = domain.parse_date(v, field, value)
        move = embargo_change.change_embargo(
            v, until, reason, _cli_actor(), clock.now(), settings, only=only
        )
        for change in move.changes:
            said = _lift_or_schedule(connection, change.vulnerability, settings, change)
            click.echo(f"{change.vulnerability.tracking_id}: {field} set{said}")
        return
    at = clock.now()
    changed = domain.set_field(v, field, value, _cli_actor(), at, reason)
    said = _lift_or_schedule(connection, changed, settings) if lifting else ""
    if not lifting and _revised(changed, at, settings):
        said = "; a new revision: its public records follow"
    click.echo(f"{changed.tracking_id}: {field} set{said}")


def _revised(v, at, settings) -> bool:
    """Did the change make a revision of a published vulnerability? Its publication steps
    are queued now (else the reconciler queues them within a minute)."""
    from app.workers import queue, scheduling  # as _lift_or_schedule: only when needed

    return scheduling.after_revision(queue.connect(runtime.redis_url(settings)), v, at)


def _lift_or_schedule(connection, v, settings, change=None) -> str:
    """An embargo end in the past lifts now; otherwise the lift is (re)scheduled. `change`:
    what an embargo change already did for the lift (else it is looked at now)."""
    from app.disclosure import lift
    from app.vulns import embargo
    from app.workers import scheduling

    change = change or lift.after_change(v, clock.now(), settings)
    outcome = scheduling.follow(connection, change, clock.now())
    if outcome == "lifted":
        return "; published now (the announcement is queued)"
    if outcome == "held":
        return "; its embargo has ended but it is not accepted, so it stays private"
    if outcome == "scheduled" and v.status in lift.LIFTABLE:
        return f"; to be published at {embargo.shown(v.embargo_until)}"
    return ""


@vulns.command("reply", help="Send the team's reply to the reporter, as the reply form does.")
@click.argument("vuln_id")
@click.option(
    "--text-file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="the reply's text (UTF-8); it goes encrypted to the reporter's key",
)
def vulns_reply(vuln_id: str, text_file: Path) -> None:
    import contextlib

    import redis

    from app.reports import replies
    from app.vulns import lifecycle as domain
    from app.workers import queue, reconcile

    try:
        text = text_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise OperatorError(f"cannot read {text_file}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise OperatorError(f"{text_file} is not UTF-8 text; save it as UTF-8") from None
    settings = context.settings()
    runtime.open_current_db(settings)
    v = domain.get(vuln_id)
    entry = replies.reply_to_reporter(v, None, text, clock.now(), actor_label=_cli_actor().label)
    # Now rather than at the reconciler's next pass (which sends it within a minute anyway).
    with contextlib.suppress(redis.RedisError, OSError):
        reconcile.queue_due_deliveries(queue.connect(runtime.redis_url(settings)), clock.now())
    if entry.delivery_id is None:
        click.echo(
            f"{v.tracking_id}: reply kept for the reporter's follow-up page (they gave no email "
            "address; nothing is mailed)"
        )
    elif entry.encrypted:
        click.echo(
            f"{v.tracking_id}: reply queued to {v.reporter_email}, encrypted to their key "
            f"{v.reporter_key.fingerprint}"
        )
    else:
        click.echo(
            f"{v.tracking_id}: reply queued to {v.reporter_email}: they have no usable key on "
            "file, so they get a signed notice asking for one (your text is not sent "
            "unencrypted); send the reply again when their key arrives"
        )


@vulns.command(
    "follow-up", help="Reissue (mailing the reporter) or revoke a case's follow-up link."
)
@click.argument("vuln_id")
@click.option(
    "--reissue", "action", flag_value="reissue", help="a new link, mailed to the reporter"
)
@click.option("--revoke", "action", flag_value="revoke", help="the link stops working")
def vulns_follow_up(vuln_id: str, action: str | None) -> None:
    import contextlib

    import redis

    from app.reports import followup_view
    from app.vulns import cases
    from app.vulns import lifecycle as domain
    from app.workers import queue, reconcile

    if action is None:
        raise OperatorError("say what to do: --reissue or --revoke")
    settings = context.settings()
    runtime.open_current_db(settings)
    v = domain.get(vuln_id)
    case = cases.case_id(v)
    if action == "revoke":
        followup_view.revoke(v, _cli_actor(), clock.now())
        click.echo(f"{case}: follow-up link revoked; `--reissue` gives the reporter a new one")
        return
    _link, told = followup_view.reissue(v, _cli_actor(), clock.now(), settings)
    with contextlib.suppress(redis.RedisError, OSError):
        reconcile.queue_due_deliveries(queue.connect(runtime.redis_url(settings)), clock.now())
    if told:
        click.echo(f"{case}: new follow-up link mailed to the reporter; the old one is dead")
    else:
        click.echo(f"{case}: new follow-up link made; the reporter has no address to mail it to")


@cli.command("lift-due", help="Lift every embargo whose time has come (the scheduler does this).")
def lift_due() -> None:
    from app.disclosure import lift
    from app.workers import queue, scheduling

    settings = context.settings()
    runtime.open_current_db(settings)
    connection = queue.connect(runtime.redis_url(settings))
    outcomes = {}
    # Together: members of a case due at the same instant are published in one lift.
    for change in lift.after_changes(list(lift.due(clock.now())), clock.now(), settings):
        v = change.vulnerability
        outcome = scheduling.follow(connection, change, clock.now())
        outcomes[v.tracking_id] = outcome
        click.echo(f"{v.tracking_id}: {_LIFT_SAID.get(outcome, outcome)}")
    if not outcomes:
        click.echo("nothing to lift")


_LIFT_SAID = {
    "lifted": "published (the announcement is queued)",
    "held": "not accepted yet: held, the team is told",
    "already": "already published",
}


@cli.command("release-notes", help="Release-note lines: embargoed CVEs by id and date alone.")
@click.option("--since", default=None, metavar="YYYY-MM-DD", help="published or ending since")
def release_notes(since: str | None) -> None:
    from app.disclosure import exports

    settings = context.settings()
    try:
        day = exports.parse_date(since) if since is not None else None
    except ValueError as exc:
        raise OperatorError(f"--since: {exc}") from None
    runtime.open_current_db(settings)
    for line in exports.release_notes(clock.now(), day, base_url=settings.base_url):
        click.echo(line)
