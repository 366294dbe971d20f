"""Where the chunks of a panel are scored: in this process, or on a dask.distributed cluster.

Series are independent, so :func:`~detector.scoring.engine.score_panel` cuts a panel into
chunks of series and hands them to an *engine*, which runs ``fn(**call)`` for each chunk and
returns the results in order; the panel is stitched back from them. Every chunk is scored by
the same code on the same inputs whichever engine runs it, so the output is identical, row for
row, and only the wall time changes:

- :class:`LocalEngine` (``engine="local"``, the default) runs the chunks one after the other
  in this process, as the detector always has;
- :class:`DaskEngine` (``engine="dask"``) sends them to a dask.distributed cluster: the one
  at ``scheduler`` (``tcp://host:8786``), or a :class:`~distributed.LocalCluster` of one
  single-threaded worker process per core, on loopback, when no scheduler is named. An
  existing :class:`distributed.Client` can be passed as the engine too. Dask is an optional
  extra: ``pip install 'detector[dask]'``. Every worker needs the same ``detector`` installed.

:func:`open_engine` turns what a user passed into an engine, and closes what it started:

>>> with open_engine("local") as engine:
...     engine.map(round, [{"number": 2.71828, "ndigits": 2}, {"number": 3.14159, "ndigits": 1}])
[2.72, 3.1]
>>> with open_engine("spark"):
...     pass
Traceback (most recent call last):
...
detector.errors.ConfigError: The 'engine' parameter must be 'local' or 'dask'. Got 'spark' instead.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from detector.errors import ConfigError, DetectorError

if TYPE_CHECKING:
    from distributed import Client

__all__ = [
    "CONNECT_TIMEOUT",
    "ENGINES",
    "DaskEngine",
    "Engine",
    "EngineError",
    "LocalEngine",
    "chunk_slices",
    "open_engine",
]

log = logging.getLogger(__name__)

#: The names ``--engine`` and ``engine=`` accept.
ENGINES: tuple[str, ...] = ("local", "dask")

#: Seconds to wait for a scheduler to answer (and for a cluster to have a worker) before
#: giving up with an error that names it: a wrong address must fail, never hang.
CONNECT_TIMEOUT = 10.0

INSTALL_HINT = "pip install 'detector[dask]'"

#: Seconds, beyond the connect timeout, for whatever accepted the connection to answer.
_ANSWER_MARGIN = 1.0


class EngineError(DetectorError):
    """The cluster could not be reached or lost the work (a runtime failure: exit code 1)."""


@runtime_checkable
class Engine(Protocol):
    """Runs independent calls and returns their results in the order of the calls."""

    #: How many chunks it runs at once (1 in this process; the cluster's worker threads).
    slots: int

    def map(self, fn: Callable[..., Any], calls: Sequence[Mapping[str, Any]]) -> list[Any]:
        """``[fn(**call) for call in calls]``, wherever the engine runs them."""
        ...


class LocalEngine:
    """The chunks one after the other, in this process."""

    slots = 1

    def __repr__(self) -> str:
        return "LocalEngine()"

    def map(self, fn: Callable[..., Any], calls: Sequence[Mapping[str, Any]]) -> list[Any]:
        return [fn(**call) for call in calls]


class DaskEngine:
    """The chunks as tasks on a dask.distributed cluster, through ``client``.

    Each call's arguments (its columns of the panel, a fresh model, its calendar effects) are
    scattered to the workers first, so the task graph stays small however large the panel;
    results are gathered in the order of the calls. The engine does not close ``client``:
    :func:`open_engine` does, when it made it.
    """

    def __init__(self, client: Client, *, address: str | None = None) -> None:
        self.client = client
        self.address = address or str(client.scheduler.address)

    def __repr__(self) -> str:
        return f"DaskEngine({self.address!r}, slots={self.slots})"

    @property
    def slots(self) -> int:
        """Worker threads of the cluster now (at least 1: a cluster that grows gets more)."""
        return max(1, sum(self.client.nthreads().values()))

    def map(self, fn: Callable[..., Any], calls: Sequence[Mapping[str, Any]]) -> list[Any]:
        calls = list(calls)
        if not calls:
            return []
        futures: list[Any] = []
        try:
            # One piece of data per call (a list is scattered element by element), without
            # hashing large arrays; every call is its own task (pure=False).
            data = self.client.scatter([dict(call) for call in calls], hash=False)
            futures = [self.client.submit(_apply, fn, d, pure=False) for d in data]
            return list(self.client.gather(futures))
        except BaseException as exc:
            with suppress(Exception):
                self.client.cancel(futures)  # a failed run leaves no work behind
            err = self._wrapped(exc)
            if err is exc:
                raise
            raise err from exc

    def _wrapped(self, exc: BaseException) -> BaseException:
        """The error to raise for ``exc``: the task's own, or an EngineError for the cluster's."""
        if isinstance(exc, DetectorError):
            return exc  # a model or input error raised on a worker: as in this process
        if isinstance(exc, ImportError):
            return EngineError(
                f"a worker of the dask cluster at {self.address} cannot run the detector's "
                f"code ({exc}); install the same version of detector on every worker"
            )
        if _is_dask_failure(exc):
            return EngineError(
                f"the dask cluster at {self.address} lost the scoring work "
                f"({type(exc).__name__}: {exc}); check that its scheduler and workers are "
                "running, or use --engine local"
            )
        return exc


def _apply(fn: Callable[..., Any], call: Mapping[str, Any]) -> Any:
    """``fn(**call)`` on a worker (a module-level function, so tasks pickle by reference)."""
    return fn(**call)


def _is_dask_failure(exc: BaseException) -> bool:
    """The cluster's own failures (a killed worker, a closed connection), not the task's."""
    from distributed import CancelledError
    from distributed.comm import CommClosedError
    from distributed.scheduler import KilledWorker

    failures = (KilledWorker, CommClosedError, CancelledError, TimeoutError, OSError)
    return isinstance(exc, failures)


def chunk_slices(n: int, chunk: int, slots: int = 1) -> list[slice]:
    """Column slices of a panel of ``n`` series: at most ``chunk`` series each, and at least
    one per slot of the engine, so that every worker has a share.

    Each chunk has a fixed cost (the refit loop over time runs once per chunk whatever its
    width), so an engine with ``slots`` gets a multiple of ``slots`` chunks of even width, not
    many small ones. In this process (one slot) the chunks are those it always scored.

    >>> chunk_slices(1200, 500)
    [slice(0, 500, None), slice(500, 1000, None), slice(1000, 1200, None)]
    >>> [s.stop - s.start for s in chunk_slices(1200, 500, slots=2)]
    [300, 300, 300, 300]
    >>> chunk_slices(3, 500, slots=2)
    [slice(0, 2, None), slice(2, 3, None)]
    """
    if n <= 0:
        return []
    if slots <= 1:
        return [slice(a, min(a + chunk, n)) for a in range(0, n, chunk)]
    tasks = slots * math.ceil(math.ceil(n / chunk) / slots)
    width = math.ceil(n / min(tasks, n))
    return [slice(a, min(a + width, n)) for a in range(0, n, width)]


def check_engine(engine: Any, scheduler: str | None = None) -> None:
    """Raise ConfigError for an engine name, or a scheduler, that :func:`open_engine` refuses.

    Cheap (connects to nothing), so callers check before any work on the data.

    >>> check_engine("local", scheduler="tcp://127.0.0.1:8786")
    Traceback (most recent call last):
    ...
    detector.errors.ConfigError: A scheduler ('tcp://127.0.0.1:8786') is only used with engine...
    """
    if isinstance(engine, str):
        if engine not in ENGINES:
            raise ConfigError(
                f"The 'engine' parameter must be 'local' or 'dask'. Got {engine!r} instead."
            )
        if engine == "local" and scheduler is not None:
            raise ConfigError(
                f"A scheduler ({scheduler!r}) is only used with engine 'dask'; pass "
                "engine='dask' (--engine dask) or leave the scheduler out."
            )
        if engine == "dask":
            _import_distributed()
        return
    if scheduler is not None:
        raise ConfigError(
            f"A scheduler ({scheduler!r}) is only used with engine='dask', not with an engine "
            f"object ({engine!r}), which already has its cluster."
        )
    if not _is_engine(engine) and not _is_client(engine):
        raise ConfigError(
            "The 'engine' parameter must be 'local', 'dask', a distributed.Client or an "
            f"Engine. Got {engine!r} instead."
        )


@contextmanager
def open_engine(
    engine: str | Engine | Client = "local",
    scheduler: str | None = None,
    *,
    n_workers: int | None = None,
    timeout: float | None = None,
) -> Iterator[Engine]:
    """The engine for ``engine`` (a name, an :class:`Engine` or a ``distributed.Client``).

    ``engine="dask"`` connects to ``scheduler`` (waiting at most ``timeout`` seconds,
    :data:`CONNECT_TIMEOUT` by default, for it to answer and to have a worker), or starts a
    ``LocalCluster`` of ``n_workers`` processes (the core count by default), one thread each,
    listening on loopback only, without a dashboard. What this function starts it closes on
    exit; an engine or client passed in is left open for its owner.
    """
    check_engine(engine, scheduler)
    if _is_engine(engine):
        yield engine
        return
    if _is_client(engine):
        yield DaskEngine(engine)
        return
    if engine == "local":
        yield LocalEngine()
        return
    wait = CONNECT_TIMEOUT if timeout is None else timeout
    if scheduler is not None:
        with _connect(scheduler, wait) as client:
            yield DaskEngine(client, address=scheduler)
    else:
        with _local_cluster(n_workers) as client:
            yield DaskEngine(client)


@contextmanager
def _connect(address: str, timeout: float) -> Iterator[Client]:
    from distributed import Client

    try:
        info = _identify(address, timeout)
        if info.get("type") != "Scheduler":
            raise EngineError(
                f"{address} answers as a dask {info.get('type', 'server')}, not a scheduler; "
                "pass the scheduler's address (`dask scheduler` prints it)"
            )
        client = Client(address, timeout=timeout, set_as_default=False)
    except ValueError as exc:  # an address distributed cannot parse
        raise ConfigError(
            f"The 'scheduler' parameter must be a dask scheduler address such as "
            f"tcp://10.0.0.5:8786. Got {address!r} instead ({exc})."
        ) from exc
    except TimeoutError as exc:  # past the connect: something listens there, but not dask
        raise EngineError(
            f"{address} accepted the connection but did not answer as a dask scheduler within "
            f"{timeout + _ANSWER_MARGIN:g} s; check the address (another service's port?), or "
            "use --engine local"
        ) from exc
    except OSError as exc:
        raise EngineError(
            f"cannot reach the dask scheduler at {address} within {timeout:g} s ({exc}); check "
            "the address and that `dask scheduler` runs there, or use --engine local"
        ) from exc
    try:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except (OSError, TimeoutError) as exc:
            raise EngineError(
                f"the dask scheduler at {address} has no worker after {timeout:g} s; start "
                f"workers with `dask worker {address}`"
            ) from exc
        log.info("scoring on the dask cluster at %s (%d worker threads)", address,
                 sum(client.nthreads().values()))  # fmt: skip
        yield client
    finally:
        client.close()


def _identify(address: str, timeout: float) -> dict[str, Any]:
    """What answers at ``address`` (its ``identity``), within ``timeout`` seconds in all.

    ``distributed.Client`` bounds the TCP connect by its timeout but not the handshake after
    it, so a port held by something else (a web server, a broker) would hang it for good. This
    asks first, under one deadline, on an event loop of its own (a notebook's loop may run).
    """

    async def ask() -> dict[str, Any]:
        from distributed.comm import connect

        comm = await connect(address, timeout=timeout)
        try:
            await comm.write({"op": "identity", "reply": True})
            return dict(await comm.read())
        finally:
            comm.abort()

    async def bounded() -> dict[str, Any]:
        # Past the connect's own deadline, so that a refused port fails as refused.
        return await asyncio.wait_for(ask(), timeout + _ANSWER_MARGIN)

    with ThreadPoolExecutor(1, thread_name_prefix="detector-dask-probe") as pool:
        return pool.submit(asyncio.run, bounded()).result()


@contextmanager
def _local_cluster(n_workers: int | None) -> Iterator[Client]:
    import dask
    from distributed import Client, LocalCluster

    workers = n_workers or os.cpu_count() or 1
    # dask's nannies start workers with MALLOC_TRIM_THRESHOLD_=65536, against fragmentation in
    # long-lived workers. Pinning it stops glibc adapting its mmap threshold, so each of the
    # scoring's large temporary arrays is mapped afresh: 2.4 s of system CPU instead of 0.7 s
    # per 150 series x 8,064 points. These workers live for one command: glibc's default.
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,  # the scoring loops hold the GIL: one process per core
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            # The scheduler serves its HTTP routes even without a dashboard: on loopback and a
            # free port, so that a busy 8787 neither warns nor listens beyond this machine.
            scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
        )
    try:
        client = Client(cluster, set_as_default=False)
        try:
            log.info("scoring on a local dask cluster of %d workers at %s", workers,
                     cluster.scheduler_address)  # fmt: skip
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def _import_distributed() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"engine 'dask' (--engine dask) needs dask.distributed, which is not installed "
            f"({exc}); install it with: {INSTALL_HINT}"
        ) from None


def _is_engine(obj: Any) -> bool:
    # Ours first: the protocol's isinstance reads ``slots``, which asks a cluster.
    return isinstance(obj, (LocalEngine, DaskEngine, Engine))


def _is_client(obj: Any) -> bool:
    if obj is None or isinstance(obj, str):
        return False
    try:
        from distributed import Client
    except ImportError:
        return False
    return isinstance(obj, Client)
