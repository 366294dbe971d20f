"""Scale-out: how fast 1, 2, ... ``detector run`` processes of one consumer group read a backlog.

Usage::

    python benchmarks/scale_out.py [--events 600000] [--partitions 6] [--instances 1 2]
                                   [--client kafka-python] [--store postgresql://...]
    python benchmarks/scale_out.py --merge-only [--events 600000]

Starts a Tansu broker on a free loopback port, fills a topic with small order events (as
``benchmarks/stream.py`` does, but keyed by event id so that every partition holds some),
then for each instance count starts that many ``detector run`` processes in one new consumer
group on a fresh PostgreSQL schema and measures the wall time from their start to the moment
every record is read and folded into the group's state (committed offsets cover the topic
and no forwarded record is left; group join included, as an operator would see it). Prints
events/s, and how many records the members forwarded to the merger. The broker, PostgreSQL
and the instances share this machine's cores, so the figure says what one machine gives, not
what N machines would.

``--merge-only``: no broker; the records are forwarded to the store as members would, then one
merger folds them all and commits: what a group whose merger reads no partition itself could
take at most.

PostgreSQL: ``--store`` (default ``postgresql://127.0.0.1:5432/test``, the machine's server);
each run gets its own schema, dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stream import PIPELINE, START

DETECTOR = shutil.which("detector") or str(Path(sys.executable).with_name("detector"))


def fill(bootstrap: str, topic: str, n: int) -> None:
    """``n`` small order events keyed by event id, so that every partition holds some (keyed
    by market, as the emitter keys them, two markets would fill two partitions at most)."""
    import orjson
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=50,
                             batch_size=1024 * 1024)  # fmt: skip
    for i in range(n):
        t = START + i * 0.05
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"
        value = orjson.dumps({"event_id": f"e{i}", "type": "order_placed", "ts": ts,
                              "source": "shop-api", "market": "DE" if i % 3 else "FR",
                              "amount": 10.0 + i % 90})  # fmt: skip
        producer.send(topic, key=f"e{i}".encode(), value=value)
    producer.flush()
    producer.close()


def _schema_url(base: str, schema: str) -> str:
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


def _drop_schema(base: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def run_group(
    bootstrap: str, topic: str, n: int, k: int, store_base: str, client: str, tmp: Path
) -> tuple[float, int]:
    """Seconds for ``k`` processes to read and fold all ``n`` records, how many of them were
    forwarded by members, and the CPU seconds the merger and the members had used by then."""
    from detector.store import open_store

    schema = f"bench_scale_{k}_{os.getpid()}"
    url = _schema_url(store_base, schema)
    (tmp / "p.yaml").write_text(PIPELINE)
    cmd = [DETECTOR, "-v", "run", "--pipeline", str(tmp / "p.yaml"), "--bootstrap-servers",
           bootstrap, "--topic", topic, "--group", f"g{k}", "--store", url, "--client", client,
           "--session-timeout", "6", "--idle-close", "3600", "--score-every", "3600",
           "--no-dlq"]  # fmt: skip
    logs = [tmp / f"run{k}_{i}.log" for i in range(k)]
    store = open_store(url)
    procs = []
    try:
        t0 = time.perf_counter()
        for log in logs:
            procs.append(subprocess.Popen(cmd, stderr=log.open("w")))
        while True:
            done = sum(store.load("bench", f"g{k}").offsets.values())
            if any(f.next > f.first for f in store.forwarded_keys("bench", f"g{k}")):
                done = -1  # read, not yet folded
            if done >= n:
                break
            if any(p.poll() is not None for p in procs):
                raise SystemExit(f"an instance exited early; see {logs}")
            time.sleep(0.2)
        took = time.perf_counter() - t0
        cpu = [_cpu_seconds(p.pid) for p in procs]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        store.close()
        _drop_schema(store_base, schema)
    forwarded = 0
    merger_cpu, member_cpu = 0.0, 0.0
    for log, seconds in zip(logs, cpu, strict=True):
        text = log.read_text()
        for line in text.splitlines():
            if " forwarded to the group's merger" in line:
                forwarded += int(line.split(" forwarded to")[0].rsplit(" ", 1)[1].replace(",", ""))
        if " merges for " in text:
            merger_cpu += seconds
        else:
            member_cpu += seconds
    return took, forwarded, merger_cpu, member_cpu


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process, all threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def merge_only(n: int, store_base: str, partitions: int = 3) -> float:
    """Seconds one merger takes to fold ``n`` records that members forwarded (already in the
    store: read the rows, unpack, decode, validate, aggregate, close, commit): the ceiling
    of a group whose merger reads no partition itself."""
    import orjson

    from detector.pipeline.config import parse_pipeline
    from detector.store import open_store
    from detector.stream.forward import Outbound
    from detector.stream.runner import StreamRunner
    from detector.stream.source import Batch

    schema = f"bench_merge_{os.getpid()}"
    store = open_store(_schema_url(store_base, schema))
    try:
        base: dict = {}
        per = n // partitions
        for part in range(partitions):
            for k in range(0, per, 50_000):
                values, offsets = [], []
                for j in range(k, min(per, k + 50_000)):
                    i = j * partitions + part
                    t = START + i * 0.05
                    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
                    ms = f"{int(t * 1000) % 1000:03d}"
                    value = {"event_id": f"e{i}", "type": "order_placed", "ts": f"{ts}.{ms}Z",
                             "source": "shop-api", "market": "DE" if i % 3 else "FR",
                             "amount": 10.0 + i % 90}  # fmt: skip
                    values.append(orjson.dumps(value))
                    offsets.append(j)
                out = Outbound()
                out.add(Batch("scale", [part] * len(values), offsets, values))
                rows = out.rows(base)
                store.forward("bench", "m", rows, base)
                base.update({(r.topic, r.partition): r.next for r in rows})
        runner = StreamRunner(parse_pipeline(PIPELINE), store, topic="scale", group="m",
                              bootstrap_servers="127.0.0.1:9", alerting=False)  # fmt: skip
        runner.merging = True
        runner._load()
        runner.agg.expect_partitions(range(partitions))
        t0 = time.perf_counter()
        folded, turn = 0, 0
        while True:
            turn += 1
            runner._fwd_force = True
            got, points, _ = runner._take_forwarded(float(turn))
            if not got:
                break
            folded += got
            runner._pending += points
            runner._commit()
        took = time.perf_counter() - t0
        assert folded == per * partitions, folded
        return took
    finally:
        store.close()
        _drop_schema(store_base, schema)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=600_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--client", default="kafka-python", choices=["kafka-python", "confluent"])
    parser.add_argument("--store", default="postgresql://127.0.0.1:5432/test")
    parser.add_argument("--logs", help="Keep the instances' logs in this directory.")
    parser.add_argument(
        "--merge-only",
        action="store_true",
        help="Time one merger folding forwarded records, no broker.",
    )
    args = parser.parse_args(argv)
    if args.merge_only:
        took = merge_only(args.events, args.store)
        print(
            f"one merger folds {args.events:,} forwarded records in {took:.2f} s: "
            f"{args.events / took:,.0f} events/s ({took / args.events * 1e6:.1f} us each)"
        )
        return 0

    from detector.testing_kafka import Broker

    n = args.events
    with Broker() as broker, tempfile.TemporaryDirectory() as scratch:
        tmp = args.logs or scratch
        Path(tmp).mkdir(parents=True, exist_ok=True)
        broker.create_topic("scale", partitions=args.partitions)
        fill(broker.bootstrap, "scale", n)
        print(f"{n:,} events in {args.partitions} partitions; {os.cpu_count()} cores; "
              f"client {args.client}; PostgreSQL store")  # fmt: skip
        base = None
        for k in args.instances:
            took, forwarded, merger_cpu, member_cpu = run_group(
                broker.bootstrap, "scale", n, k, args.store, args.client, Path(tmp)
            )
            base = base or took
            print(f"{k} instance(s): {took:6.1f} s  {n / took:>9,.0f} events/s  "
                  f"(x{base / took:.2f})  forwarded by members {forwarded:,}; CPU s: merger "
                  f"{merger_cpu:.1f}, members {member_cpu:.1f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
