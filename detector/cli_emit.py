"""Commands that put events on Kafka: ``emit`` (one event, from a shell) and ``replay`` (files).

Registered on the ``detector`` group by :mod:`detector.cli`. Both key events like the emitter SDK
(:func:`detector.emit.event_key`), so a replayed file lands in partitions exactly as the live
apps' events would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import orjson

from detector.cli import _fail_cleanly, main
from detector.errors import DetectorError, InputError

bootstrap_option = click.option(
    "--bootstrap-servers",
    envvar="DETECTOR_BOOTSTRAP_SERVERS",
    default="127.0.0.1:9092",
    show_default=True,
    show_envvar=True,
    metavar="HOST:PORT",
    help="Kafka brokers, comma separated.",
)

#: Producer settings of ``replay``: throughput first (large batches), still acknowledged by all.
REPLAY_PRODUCER_CONFIG: dict[str, Any] = {
    "acks": "all",
    "linger_ms": 20,
    "batch_size": 256 * 1024,
    "retries": 10,
    "retry_backoff_ms": 200,
    "request_timeout_ms": 30_000,
    "delivery_timeout_ms": 60_000,
    "max_block_ms": 10_000,
    "bootstrap_timeout_ms": 5_000,
    "enable_idempotence": False,  # see detector.emit.PRODUCER_CONFIG
}


def parse_attributes(items: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` attributes; a value is read as JSON when it parses as a number, a boolean,
    null or a quoted string (so '"007"' stays a string), else taken as typed; events are flat,
    so a JSON list or object stays text. ``ts`` and ``event_id`` are always taken as typed.

    >>> parse_attributes(("market=DE", "amount=129.9", "paid=true", 'id="007"', "n=[1]"))
    {'market': 'DE', 'amount': 129.9, 'paid': True, 'id': '007', 'n': '[1]'}
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"an attribute must look like KEY=VALUE, got {item!r}")
        value: Any = raw
        if key not in ("ts", "event_id"):
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError:
                parsed = raw
            if parsed is None or isinstance(parsed, bool | int | float | str):
                value = parsed
        out[key] = value
    return out


@main.command()
@click.argument("event_type", metavar="TYPE")
@click.argument("attributes", nargs=-1, metavar="KEY=VALUE...")
@bootstrap_option
@click.option("--topic", default="domain-events", show_default=True, help="Kafka topic.")
@click.option("--source", default="cli", show_default=True, help="The event's source.")
@click.option(
    "--timeout", type=float, default=10.0, show_default=True, help="Seconds to wait for Kafka."
)
@_fail_cleanly
def emit(
    event_type: str,
    attributes: tuple[str, ...],
    bootstrap_servers: str,
    topic: str,
    source: str,
    timeout: float,
) -> None:
    """Emit one event of TYPE with KEY=VALUE attributes; print it once Kafka acknowledged it.

    Values are JSON when they parse (129.9, 3, true), else strings. event_id and ts are filled
    (a new uuid, now) unless given as event_id=... and ts=... (ISO 8601). Exit 1 if the event
    is not acknowledged within --timeout.

        detector emit order_placed market=DE amount=129.9 currency=EUR
    """
    from detector.emit import Emitter, make_event

    attrs = parse_attributes(attributes)
    try:
        event = make_event(event_type, source, **attrs)
    except (TypeError, ValueError) as exc:
        raise InputError(str(exc)) from exc
    emitter = Emitter(bootstrap_servers, topic, source)
    try:
        attrs = {k: v for k, v in event.items() if k not in ("type", "source")}
        if not emitter.emit(event_type, **attrs):
            raise InputError("the event cannot be encoded as JSON")
        delivered = emitter.flush(timeout)
    finally:
        emitter.close(timeout=0)  # flushed already, or given up
    if not delivered:
        raise DetectorError(
            f"event {event['event_id']} not delivered to topic {topic!r} at {bootstrap_servers} "
            f"within {timeout:g} s: is the broker running?"
        )
    click.echo(orjson.dumps(event).decode())


def _speed(ctx: click.Context, param: click.Parameter, value: str) -> float | None:
    """``max`` (None) or ``60x`` / ``60``: event-seconds replayed per wall-clock second."""
    if value.strip().lower() == "max":
        return None
    try:
        factor = float(value.strip().lower().removesuffix("x"))
    except ValueError:
        factor = 0.0
    if not factor > 0:
        raise click.BadParameter(f"use max or a factor such as 60x, got {value!r}")
    return factor


@main.command()
@click.argument("events", nargs=-1, required=True, metavar="EVENTS_FILE...")
@click.option("--topic", required=True, help="Kafka topic to produce to.")
@bootstrap_option
@click.option(
    "--speed",
    default="max",
    show_default=True,
    callback=_speed,
    help="max: as fast as possible; 60x: paced by the events' ts, 60 event-seconds a second.",
)
@_fail_cleanly
def replay(
    events: tuple[str, ...], topic: str, bootstrap_servers: str, speed: float | None
) -> None:
    """Produce the events of EVENTS_FILE... (JSONL, CSV or Parquet; .gz allowed) to --topic.

    Each event is sent with its own fields, keyed like the emitter SDK; an undecodable line is
    sent as it is, for the consumer to dead-letter. Exit 1 if Kafka cannot be reached or an
    event is not acknowledged.
    """
    from kafka.errors import KafkaError

    from detector.emit import close_producer, open_producer
    from detector.events.read import event_format

    for path in events:
        event_format(path)
        if not Path(path).is_file():
            raise InputError("file not found", source=path)
    try:
        producer = open_producer(bootstrap_servers, **REPLAY_PRODUCER_CONFIG)
    except ConnectionError as exc:
        raise DetectorError(f"{exc}: is the broker running?") from exc
    errors: list[BaseException] = []
    pace = _Pacer(speed)
    sent = 0
    started = time.monotonic()
    try:
        for key, value, ts in _records(events):
            pace(ts)
            producer.send(topic, value=value, key=key).add_errback(errors.append)
            sent += 1
        producer.flush(timeout=REPLAY_PRODUCER_CONFIG["delivery_timeout_ms"] / 1000 + 5)
    except KafkaError as exc:
        errors.append(exc)
    finally:
        close_producer(producer, timeout=5)
    seconds = time.monotonic() - started
    if errors:
        raise DetectorError(
            f"not every event reached topic {topic!r} at {bootstrap_servers} ({sent:,} sent, "
            f"{len(errors):,} errors): {errors[0]}"
        )
    click.echo(
        f"sent {sent:,} events to {topic} in {seconds:.1f} s ({sent / max(seconds, 1e-9):,.0f}/s)"
    )


def _records(paths: tuple[str, ...]) -> Iterator[tuple[bytes | None, bytes, str | None]]:
    """(key, value, ts) of every record of the files; an undecodable line as it was read."""
    from detector.emit import event_key
    from detector.events.read import read_events
    from detector.events.schema import Undecodable

    for chunk in read_events(paths, chunk=10_000):
        for event in chunk.events:
            if isinstance(event, Undecodable):
                yield None, event.raw.encode(), None
            elif isinstance(event, dict):
                value = orjson.dumps(event, default=str, option=orjson.OPT_SERIALIZE_NUMPY)
                yield event_key(event), value, event.get("ts")
            else:  # JSON, but not an object: sent as it is, the consumer rejects it
                yield None, orjson.dumps(event, default=str), None


class _Pacer:
    """Sleeps so that events go out ``speed`` times faster than their ``ts`` says (None: no
    pacing). Events without a readable ts, or earlier than the last, go out at once."""

    def __init__(self, speed: float | None) -> None:
        self.speed = speed
        self.origin: tuple[float, float] | None = None  # (event time, wall time) of the first

    def __call__(self, ts: Any) -> None:
        if self.speed is None or ts is None:
            return
        from detector.events.schema import parse_ts

        try:
            t = parse_ts(ts)
        except ValueError:
            return
        if self.origin is None:
            self.origin = (t, time.monotonic())
            return
        delay = self.origin[1] + (t - self.origin[0]) / self.speed - time.monotonic()
        if delay > 0.002:
            time.sleep(delay)
