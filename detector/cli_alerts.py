"""``detector alerts ...``: list, acknowledge, silence and label alerts; check routes and receivers.

They work on the store that ``detector run`` writes (``--store``, else ``DETECTOR_STORE``,
else the pipeline's ``store.url``, else ``sqlite:///detector.db``), so a person and every
running instance see the same acks and silences. ``--pipeline`` (or ``DETECTOR_PIPELINE``)
narrows to one pipeline; without it, ids are looked up across pipelines and a silence applies
to every pipeline. ``test-route`` and ``send-test`` need the pipeline's ``alerting:`` section.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from typing import Any

import click

from detector.cli import _fail_cleanly, main
from detector.errors import ConfigError, DetectorError

STATES = ("firing", "resolved", "silenced", "acked")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class _Context:
    def __init__(self, pipeline_file: str | None, store_url: str | None) -> None:
        self.pipeline_file = pipeline_file or os.environ.get("DETECTOR_PIPELINE") or None
        self.store_flag = store_url
        self._pipeline: Any = None
        self._stores: list[Any] = []

    @property
    def pipeline(self) -> Any:
        if self._pipeline is None:
            if not self.pipeline_file:
                raise ConfigError(
                    "this command needs the pipeline: give --pipeline FILE (before the "
                    "subcommand: detector alerts --pipeline FILE ...) or set DETECTOR_PIPELINE"
                )
            from detector.pipeline.config import load_pipeline

            self._pipeline = load_pipeline(self.pipeline_file)
        return self._pipeline

    def state(self) -> Any:
        from detector.alerting.state import AlertState
        from detector.cli_stream import DEFAULT_STORE, _store_url
        from detector.store import open_store

        if self.pipeline_file:
            url, name = _store_url(self.pipeline, self.store_flag), self.pipeline.name
        else:
            url = self.store_flag or os.environ.get("DETECTOR_STORE") or DEFAULT_STORE
            name = None
        store = open_store(url)
        self._stores.append(store)
        return AlertState(store, name)

    def close(self) -> None:
        for s in self._stores:
            s.close()


@main.group()
@click.option("--pipeline", "pipeline_file", default=None, help="Pipeline YAML file.")
@click.option("--store", "store_url", default=None, help="Store URL (default: see above).")
@click.pass_context
def alerts(ctx: click.Context, pipeline_file: str | None, store_url: str | None) -> None:
    """Alerts in the store: list, ack, silence, label; test routes and receivers."""
    obj = _Context(pipeline_file, store_url)
    ctx.obj = obj
    ctx.call_on_close(obj.close)


def _time(value: Any) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%SZ")


@alerts.command("list")
@click.option("--state", type=click.Choice(STATES), default=None, help="Only alerts in this state.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_obj
@_fail_cleanly
def list_(obj: _Context, state: str | None, as_json: bool) -> None:
    """Alert episodes, newest first."""
    import pandas as pd

    st = obj.state()
    now = pd.Timestamp.now(tz="UTC")
    rows = st.alerts(state=state, at=now)
    silencer = None
    if state in ("silenced", "firing", None):
        from detector.alerting.matchers import matches_all, parse_matchers

        active = [s for s in st.silences(active_at_us=now.value // 1000) if s.starts_at <= now]
        parsed = [(s.id, parse_matchers(s.matchers)) for s in active]

        def silencer(labels: Any) -> list[str]:
            return [sid for sid, ms in parsed if matches_all(ms, labels)]

    out = []
    for r in rows:
        silenced = silencer(r.alert.labels) if silencer and r.alert.status == "firing" else []
        if state == "silenced" and not silenced:
            continue
        if state == "firing" and (silenced or r.acked(now)):
            continue
        status = r.alert.status
        if status == "firing" and r.acked(now):
            status = "acked"
        elif silenced:
            status = "silenced"
        out.append((r, status, silenced))
    if as_json:
        for r, status, silenced in out:
            click.echo(
                json.dumps(
                    {
                        "id": r.id,
                        "pipeline": r.pipeline,
                        "state": status,
                        "silenced_by": silenced,
                        "acked_by": r.acked_by,
                        "feedback": r.feedback,
                        **r.alert.to_dict(),
                    }
                )
            )
        return
    if not out:
        click.echo("no alerts" + (f" in state {state}" if state else ""))
        return
    click.echo(f"{'ID':<12}  {'STATE':<9} {'STARTED':<20} {'SEVERITY':<8}  SERIES / REASON")
    for r, status, _ in out:
        labels, ann = r.alert.labels, r.alert.annotations
        click.echo(
            f"{r.id:<12}  {status:<9} {_time(r.alert.starts_at):<20} "
            f"{labels.get('severity', ''):<8}  {labels.get('series', labels.get('alertname'))}"
            f" [{labels.get('kind', '')}] {ann.get('reason', '')}"
        )


@alerts.command()
@click.argument("alert_id")
@click.option("--for", "duration", default=None, help="Snooze: acknowledged only this long (2h).")
@click.option("--comment", default="", help="Why (shown to the team).")
@click.option("--by", default=None, help="Who (default: the user name).")
@click.pass_obj
@_fail_cleanly
def ack(obj: _Context, alert_id: str, duration: str | None, comment: str, by: str | None) -> None:
    """Acknowledge an alert: stop its escalation (for a while, with --for)."""
    import pandas as pd

    from detector.alerting.state import now_us
    from detector.pipeline.config import parse_duration

    until = None
    if duration:
        try:
            until = pd.Timestamp.now(tz="UTC") + parse_duration(duration)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--for") from None
    row = obj.state().ack(alert_id, by or _user(), until=until, comment=comment, now_us=now_us())
    what = f"snoozed until {_time(until)}" if until is not None else "acknowledged"
    click.echo(f"{row.id} {what} by {row.acked_by}: {row.alert.labels.get('series', '')}")


@alerts.command()
@click.option(
    "--matcher",
    "matchers",
    multiple=True,
    required=True,
    help="Label matcher, e.g. 'market=DE' or 'kind=~\"dip|missing\"' (repeatable).",
)
@click.option("--for", "duration", default="2h", show_default=True, help="How long.")
@click.option("--start", default=None, help="Start time (ISO, UTC if naive; default now).")
@click.option("--comment", required=True, help="Why (shown to the team).")
@click.option("--by", default=None, help="Who (default: the user name).")
@click.pass_obj
@_fail_cleanly
def silence(
    obj: _Context,
    matchers: tuple[str, ...],
    duration: str,
    start: str | None,
    comment: str,
    by: str | None,
) -> None:
    """Silence alerts whose labels match every matcher, for a while."""
    import pandas as pd

    from detector.alerting.matchers import parse_matchers
    from detector.cli_stream import _time as parse_time
    from detector.pipeline.config import parse_duration

    parse_matchers(list(matchers))  # a bad matcher is an error here, not a silent no-op
    begin = parse_time(start) or pd.Timestamp.now(tz="UTC")
    try:
        end = begin + parse_duration(duration)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--for") from None
    row = obj.state().add_silence(list(matchers), begin, end, by or _user(), comment)
    click.echo(f"silence {row.id}: {', '.join(matchers)} until {_time(end)}")


@alerts.command()
@click.pass_obj
@_fail_cleanly
def silences(obj: _Context) -> None:
    """Silences that have not ended."""
    from detector.alerting.state import now_us

    rows = obj.state().silences(active_at_us=now_us())
    if not rows:
        click.echo("no silences")
    for s in rows:
        click.echo(
            f"{s.id}  {_time(s.starts_at)} .. {_time(s.ends_at)}  {', '.join(s.matchers)}"
            f"  ({s.created_by}: {s.comment})"
        )


@alerts.command()
@click.argument("silence_id")
@click.pass_obj
@_fail_cleanly
def expire(obj: _Context, silence_id: str) -> None:
    """End a silence now."""
    from detector.alerting.state import now_us

    obj.state().expire_silence(silence_id, now_us())
    click.echo(f"silence {silence_id} expired")


@alerts.command()
@click.argument("alert_id")
@click.option(
    "--as",
    "verdict",
    required=True,
    type=click.Choice(["true", "false-positive", "expected", "new-normal"]),
)
@click.option("--comment", default="")
@click.pass_obj
@_fail_cleanly
def label(obj: _Context, alert_id: str, verdict: str, comment: str) -> None:
    """Say whether an alert was right (kept for tuning)."""
    row = obj.state().label(alert_id, verdict, comment)
    click.echo(f"{row.id} labelled {verdict}")


def _pipeline_option(func: Any) -> Any:
    """``--pipeline`` after the subcommand too (``detector alerts test-route --pipeline F``)."""

    def keep(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
        if value:
            ctx.find_object(_Context).pipeline_file = value

    return click.option(
        "--pipeline",
        "pipeline_file",
        default=None,
        expose_value=False,
        callback=keep,
        help="Pipeline YAML file (also accepted before the subcommand).",
    )(func)


@alerts.command("test-route")
@click.argument("labels", nargs=-1, required=True)
@_pipeline_option
@click.pass_obj
@_fail_cleanly
def test_route(obj: _Context, labels: tuple[str, ...]) -> None:
    """Which receivers would get an alert with these labels (key=value ...), and why."""
    parsed = {}
    for item in labels:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise click.BadParameter(f"{item!r} is not key=value", param_hint="LABELS")
        parsed[key] = value
    cfg = obj.pipeline.alerting_config
    route = cfg.compiled_route()
    for line in route.explain(parsed):
        click.echo(line)


@alerts.command("send-test")
@click.argument("receiver")
@_pipeline_option
@click.pass_obj
@_fail_cleanly
def send_test(obj: _Context, receiver: str) -> None:
    """Send a test notification to RECEIVER now (not through the outbox); exit 1 if it fails."""
    import pandas as pd

    from detector.alerting.model import Alert, DeliveryError, Notification
    from detector.alerting.receivers import build_receiver

    cfg = obj.pipeline.alerting_config.receiver(receiver)
    now = pd.Timestamp.now(tz="UTC")
    alert = Alert(
        {
            "alertname": "detector_test",
            "pipeline": obj.pipeline.name,
            "severity": "info",
            "kind": "test",
        },
        now,
        {
            "summary": f"test notification from detector to {receiver}",
            "reason": "sent by `detector alerts send-test`",
        },
    )
    note = Notification.build(
        receiver, "test", {}, [alert], created_at=now, sequence=now.value, test=True
    )
    r = build_receiver(cfg)
    try:
        r.send(note)
    except DeliveryError as exc:
        click.echo(f"send-test {receiver}: FAILED: {exc}", err=True)
        sys.exit(1)
    finally:
        close = getattr(r, "close", None)
        if close:
            close()
    click.echo(f"send-test {receiver}: delivered ({r.kind}, key {note.key})")


__all__ = ["DetectorError", "alerts"]
