"""The durable history in PostgreSQL, shared by any number of processes and machines.

:class:`PostgresHistory` implements :class:`chat.backends.base.HistoryStore`
like :class:`chat.backends.sqlite.SQLiteHistory`, on the same schema
(:mod:`chat.backends.schema`), which it migrates forward when it first connects.
:meth:`PostgresHistory.directory` gives the accounts, rooms and memberships
kept in the same database, over the same pool
(:class:`chat.backends.directory_postgres.PostgresDirectory`).

Seq comes from the database: one batch is one call of the ``chat_append``
function, one statement in its own transaction and one round trip. It claims
the batch's refs in ``refs`` (a ref already there is a :class:`Duplicate` and
takes no seq), bumps each room's counter row in ``rooms`` (its row lock orders
every writer of the room, in any process; rooms are locked in one order, so
batches cannot deadlock) and inserts the messages under the seqs it handed
out. A function rather than one statement of CTEs: the refs must be claimed
(and a concurrent claim of the same ref waited for) before the seqs are
counted, and the statements of one CTE query all see one snapshot.

One batch is in flight per process at a time: what is appended meanwhile goes
as the next batch, so a sender's messages keep their order and batches grow
with the load.

Driver: asyncpg. ``bench/pg_drivers.py --batches 1000`` measured both
well-kept async drivers on this call, one batch in flight, 10 rooms (a
throwaway cluster on this shared 2-core machine, fsync off; asyncpg's pool
without its reset query on release, see :func:`keep_session`)::

    driver   batch  median ms/batch  client CPU us/msg
    asyncpg      1            0.326              153.7
    psycopg      1            0.351              182.9
    asyncpg     10            0.749               16.3
    psycopg     10            0.859               25.5
    asyncpg    100            5.134                4.8
    psycopg    100            4.993                8.0

asyncpg takes 16-40 % less client CPU per message at every batch size, with
the same round trip: that CPU is the server's budget for fan-out. Its API
fits too: arrays for ``unnest`` with no adaptation code, and a pool that
replaces broken connections at the next acquire, so the store recovers from
an outage by itself. (With asyncpg's default pool reset, each release costs a
second round trip: 0.45 ms and 243 us/msg at batch 1, worse than psycopg.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs, no py.typed

from chat.backends import events_postgres as events
from chat.backends.base import Pending, StoreUnavailable, append_future, settle
from chat.backends.directory_postgres import PostgresDirectory
from chat.backends.events_postgres import APPEND_SQL, READ
from chat.backends.events_postgres import message as read_row
from chat.backends.pg_views import RoomViews
from chat.backends.retention import CHUNK, Retention
from chat.backends.schema import POSTGRES_STEPS, POSTGRES_VERSION_TABLE, VERSION, too_new
from chat.core.model import EventKind, Message, ReadState, SearchHit

log = logging.getLogger(__name__)

__all__ = ["APPEND_SQL", "PostgresHistory", "keep_session", "migrate_postgres"]

# Rooms with history: a room made without a message yet (a private room,
# a DM) has a row in ``rooms`` and no seq.
_ROOMS = "SELECT room, last_seq FROM rooms WHERE last_seq > 0"
# A statement that runs longer is cancelled: a stuck database answers
# ``unavailable`` instead of holding a batch (and every say behind it) forever.
STATEMENT_TIMEOUT_S = 5.0
# A migration's steps may take minutes on a big history; a stuck one still ends.
MIGRATION_TIMEOUT_S = 3600.0
CONNECT_TIMEOUT_S = 5.0
POOL_SIZE = 4
# A server started while PostgreSQL was unreachable connects in the background,
# first quickly, then at most this far apart, so /healthz turns ok by itself.
RECONNECT_FIRST_S = 0.5
RECONNECT_MAX_S = 5.0
# Taken by the migrating transaction: servers starting together migrate one after the other.
_MIGRATION_LOCK = 7_311_011

# What a broken or refused connection, a timeout or a server error raise.
_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError)


async def migrate_postgres(pool: asyncpg.Pool) -> int:
    """Bring the database to :data:`VERSION` in one transaction; returns the version it had."""
    async with pool.acquire() as conn, conn.transaction():
        # A step rewrites tables (version 4 indexes every message for search: half
        # a minute for a million): the store's statement timeout, meant for a
        # batch, would cancel it at every start. Nothing is served meanwhile.
        await conn.execute("SET LOCAL statement_timeout = 0")
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK, timeout=MIGRATION_TIMEOUT_S)
        await conn.execute(POSTGRES_VERSION_TABLE)
        found = await conn.fetchval("SELECT max(version) FROM schema_version") or 0
        if found > VERSION:
            raise too_new(found, "the PostgreSQL database")
        for step in range(found + 1, VERSION + 1):
            await conn.execute(POSTGRES_STEPS[step], timeout=MIGRATION_TIMEOUT_S)
        if found != VERSION:
            await conn.execute("DELETE FROM schema_version")
            await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", VERSION)
        return int(found)


async def keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset on release, doing nothing: asyncpg's default sends
    ``RESET ALL; UNLISTEN *; ...``, a second round trip per batch, for session
    state the store never sets (an open transaction is still rolled back)."""


class PostgresHistory:
    """History in PostgreSQL at ``dsn`` (``postgresql://USER@HOST:PORT/DB``).

    Connects at the first call (the service's ``recent_refs`` at start), and
    again after an outage: calls fail with :class:`StoreUnavailable` while the
    database is unreachable, and work again once it is back, with no restart.

    ``sole_writer``: no other process writes this database (one server
    without ``--redis``; the LocalBroker delivers through :meth:`listen`). Then
    the last seqs are kept in memory, updated as each batch's listener runs,
    and reads stop at them: nothing is seen as committed before it was
    delivered, as with SQLite. Shared, the broker's ``caught_up`` does that.
    """

    def __init__(
        self,
        dsn: str,
        retention_days: float | None = None,
        wall: Callable[[], float] = time.time,
        pool_size: int = POOL_SIZE,
        sole_writer: bool = False,
        statement_timeout: float = STATEMENT_TIMEOUT_S,
    ) -> None:
        self._dsn = dsn
        self._pool_size = pool_size
        self._statement_timeout = statement_timeout
        self._sole_writer = sole_writer
        self._pool: asyncpg.Pool | None = None
        self._opening: asyncio.Future[asyncpg.Pool] | None = None
        self._last: dict[str, int] = {}
        self._batch: list[Pending] = []
        self._inflight: asyncio.Task[None] | None = None
        self._closed = False  # refuses appends; what was taken is still stored
        self._shut = False  # the pool is closed for good
        self._on_commit: Callable[[list[Message]], None] | None = None
        self._reconnect: asyncio.Task[None] | None = None
        self._views = RoomViews(self._fetch)  # fresh joins' views, batched (a join storm)
        self.connected = asyncio.Event()  # set once the pool is open (and the schema migrated)
        self.retention = Retention(retention_days, self.expire, wall)

    def listen(self, on_commit: Callable[[list[Message]], None] | None) -> None:
        """Call ``on_commit`` with each committed batch (its new messages, in seq
        order per room) as soon as its commit is known, before any future of
        the batch resolves (see SQLiteHistory.listen)."""
        self._on_commit = on_commit

    # -- connecting --------------------------------------------------------

    async def _ready(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        if self._shut:
            raise StoreUnavailable("the history store is closed")
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._open())
        opening = self._opening
        try:
            return await asyncio.shield(opening)
        finally:
            if opening.done() and self._opening is opening and self._pool is None:
                self._opening = None  # failed: the next call tries again

    async def _open(self) -> asyncpg.Pool:
        try:
            pool: asyncpg.Pool = await asyncpg.create_pool(
                self._dsn,
                min_size=1,
                max_size=self._pool_size,
                timeout=CONNECT_TIMEOUT_S,
                reset=keep_session,
                command_timeout=self._statement_timeout + 1.0,
                server_settings={
                    "statement_timeout": str(int(self._statement_timeout * 1000)),
                    "application_name": "chat",
                },
            )
        except _ERRORS as exc:
            raise StoreUnavailable(f"postgresql: {exc}") from exc
        try:
            found = await migrate_postgres(pool)
            if found != VERSION:
                log.info("migrated the history schema from version %d to %d", found, VERSION)
            if self._sole_writer:
                self._last = {r["room"]: r["last_seq"] for r in await pool.fetch(_ROOMS)}
        except BaseException as exc:
            await pool.close()
            if isinstance(exc, _ERRORS):
                raise StoreUnavailable(f"postgresql: {exc}") from exc
            raise
        self._pool = pool
        self.connected.set()
        return pool

    @property
    def reachable(self) -> bool:
        """False until the first connection is made: the server started degraded (see recent_refs)."""
        return self._pool is not None or self._shut

    async def _connect_in_background(self) -> None:
        delay = RECONNECT_FIRST_S
        while self._pool is None and not self._shut:
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)
            try:
                await self._ready()
            except StoreUnavailable:
                continue
            except Exception:  # a database too new, or a bug: calls keep trying and failing, log it once
                log.exception("connecting to postgresql failed")
                return
        if self._pool is not None:
            log.warning("postgresql is reachable: the history store works")

    # -- appending ---------------------------------------------------------

    def directory(self) -> PostgresDirectory:
        """Accounts, rooms and memberships in this database, over this store's pool."""
        return PostgresDirectory(self._ready)

    def append(
        self,
        room: str,
        name: str,
        text: str,
        ts: int,
        session: str,
        ref: str | None,
        *,
        guest: bool = False,
        kind: EventKind = EventKind.MESSAGE,
        target: int | None = None,
        emoji: str | None = None,
        mentions: tuple[str, ...] = (),
    ) -> asyncio.Future[Message]:
        future = append_future(self._closed)
        if self._closed:
            return future
        if not self._batch and self._inflight is None:
            asyncio.get_running_loop().call_soon(self._flush)
        # seq 0 until the database hands one out.
        event = Message(
            room, 0, name, text, ts, session, ref, guest, kind=kind, target=target, emoji=emoji, mentions=mentions
        )
        self._batch.append((event, future))
        return future

    def _flush(self) -> None:
        if self._batch and self._inflight is None:
            batch, self._batch = self._batch, []
            self._inflight = asyncio.ensure_future(self._commit(batch))
            self._inflight.add_done_callback(self._committed)

    def _committed(self, task: asyncio.Task[None]) -> None:
        self._inflight = None
        # What was appended during the round trip goes as the next batch.
        self._flush()

    async def _commit(self, batch: list[Pending]) -> None:
        try:
            await self._store(batch)
        except StoreUnavailable as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        except Exception:  # a bug must not stop the appends: log it; the batch is answered below
            log.exception("storing %d messages failed", len(batch))
        finally:
            for _, future in batch:
                if not future.done():
                    future.set_exception(StoreUnavailable("postgresql: the message may not have been stored"))

    async def _store(self, batch: list[Pending]) -> None:
        pool = await self._ready()
        columns = events.append_columns([m for m, _ in batch])
        try:
            rows = await pool.fetch(APPEND_SQL, *columns)
        except _ERRORS as exc:
            # Whether it committed is unknown if the connection broke after the
            # commit: the sender retries with its ref, and ``refs`` dedupes it.
            raise StoreUnavailable(f"postgresql: {exc}") from exc
        by_pos = {row["pos"]: row for row in rows}
        stored: list[Pending] = []
        duplicates: list[Pending] = []
        for pos, (m, future) in enumerate(batch, start=1):
            row = by_pos.get(pos)
            if row is None or row["room"] is None:
                if not future.done():
                    future.set_exception(StoreUnavailable(f"the message for ref {m.ref!r} is gone (retention)"))
            else:
                (stored if row["fresh"] else duplicates).append((read_row(row), future))
        for message, _ in stored:
            if message.seq > self._last.get(message.room, 0):
                self._last[message.room] = message.seq
        settle(self._on_commit, stored, duplicates, log)

    async def drain(self) -> None:
        while self._batch or self._inflight is not None:
            if self._inflight is not None:
                await asyncio.wait([self._inflight])
            else:
                self._flush()

    # -- reading -----------------------------------------------------------

    async def _fetch(self, sql: str, *args: object) -> list[Any]:
        pool = await self._ready()
        try:
            return list(await pool.fetch(sql, *args))
        except (*_ERRORS, OverflowError) as exc:
            raise StoreUnavailable(f"postgresql: {exc}") from exc

    def _bound(self, room: str) -> int:
        """Reads stop after this seq: what this process delivered, when it is the only writer."""
        return self._last.get(room, 0) if self._sole_writer else 2**62

    async def before(self, room: str, seq: int | None, limit: int) -> list[Message]:
        bound = min(seq if seq is not None else 2**62, self._bound(room) + 1)
        rows = await self._fetch(
            f"SELECT {READ} FROM messages m WHERE room = $1 AND seq < $2 AND kind = 'message'"
            " ORDER BY seq DESC LIMIT $3",
            room,
            bound,
            limit,
        )
        return [read_row(r) for r in reversed(rows)]

    async def after(self, room: str, seq: int, limit: int) -> list[Message]:
        rows = await self._fetch(
            f"SELECT {READ} FROM messages m WHERE room = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4",
            room,
            seq,
            self._bound(room),
            limit,
        )
        return [read_row(r) for r in rows]

    async def get(self, room: str, seq: int) -> Message | None:
        if seq > self._bound(room):
            return None
        rows = await self._fetch(f"SELECT {READ} FROM messages m WHERE room = $1 AND seq = $2", room, seq)
        return read_row(rows[0]) if rows else None

    async def search(self, query: str, rooms: list[str], before: int | None, limit: int) -> list[SearchHit]:
        sql, args = events.search_sql(query, rooms, before, limit)
        if not sql:
            return []
        return [events.hit(r) for r in await self._fetch(sql, *args)]

    async def set_read(self, account: int, room: str, seq: int) -> int:
        rows = await self._fetch(events.SET_READ, account, room, seq)
        return int(rows[0]["seq"])

    async def read_state(self, account: int, name: str, rooms: list[str]) -> dict[str, ReadState]:
        sql, args = events.read_state_sql(account, name, rooms)
        return {
            r["room"]: ReadState(int(r["read"]), int(r["unread"]), int(r["mentions"]))
            for r in await self._fetch(sql, *args)
        }

    async def room_view(self, room: str, since: int | None, limit: int) -> tuple[int, list[Message]]:
        if self._sole_writer:
            await self._ready()
            last = self._last.get(room, 0)
            if since is None:
                return last, await self.before(room, last + 1, limit)
            return last, await self.after(room, since, limit)
        if since is None:
            return await self._views.read(room, limit)  # a fresh join: batched with the others in flight
        # A resume. One statement, one snapshot: the room's counter and its messages after ``since`` up to it.
        rows = await self._fetch(
            "SELECT l.s AS last_seq, m.* FROM"
            " (SELECT COALESCE((SELECT last_seq FROM rooms WHERE room = $1), 0) AS s) l"
            f" LEFT JOIN LATERAL (SELECT {READ} FROM messages m WHERE room = $1"
            " AND seq > $3 AND seq <= l.s ORDER BY seq LIMIT $2) m ON true",
            room,
            limit,
            since,
        )
        last = int(rows[0]["last_seq"])
        messages = [read_row(r) for r in rows if r["seq"] is not None]
        return last, messages

    async def last_seq(self, room: str) -> int:
        if self._sole_writer:
            await self._ready()
            return self._last.get(room, 0)
        rows = await self._fetch("SELECT last_seq FROM rooms WHERE room = $1", room)
        return int(rows[0]["last_seq"]) if rows else 0

    async def rooms(self) -> dict[str, int]:
        if self._sole_writer:
            await self._ready()
            return dict(self._last)
        return {r["room"]: r["last_seq"] for r in await self._fetch(_ROOMS)}

    async def recent_refs(self, since_ts: int) -> list[Message]:
        # The service calls this once as it starts: connect (and migrate) now,
        # so a database too new stops the start, and start the retention
        # passes. The window itself is not needed: ``refs`` makes a retried
        # ref a duplicate in every process, so an unreachable database need
        # not stop the start either: the server serves degraded (says and
        # joins answer ``unavailable``, /healthz says so) and connects in the
        # background, and at every call meanwhile.
        try:
            await self._ready()
        except StoreUnavailable as exc:
            log.error("history store unreachable, serving degraded and connecting: %s", exc)
            self._reconnect = asyncio.ensure_future(self._connect_in_background())
        self.retention.start()
        return []

    async def expire(self, cutoff_ms: int) -> int:
        """Delete messages (and refs) older than ``cutoff_ms``, a chunk per transaction; returns how many."""
        deleted = 0
        while True:
            rows = await self._fetch(
                # The refs of exactly the messages gone, in the same statement: a ref
                # without its message would make a retry of it fail.
                "WITH gone AS (DELETE FROM messages WHERE ctid = ANY (ARRAY("
                "SELECT ctid FROM messages WHERE ts < $1 LIMIT $2)) RETURNING room, seq),"
                " refs_gone AS (DELETE FROM refs r USING gone g"
                " WHERE r.ts < $1 AND r.room = g.room AND r.seq = g.seq RETURNING 1),"
                # What is kept about the messages gone goes with them.
                " reactions_gone AS (DELETE FROM reactions r USING gone g WHERE r.room = g.room AND r.target = g.seq),"
                " mentions_gone AS (DELETE FROM mentions x USING gone g WHERE x.room = g.room AND x.seq = g.seq)"
                " SELECT (SELECT count(*) FROM gone) AS n, (SELECT count(*) FROM refs_gone) AS r",
                cutoff_ms,
                CHUNK,
            )
            n = int(rows[0]["n"])
            deleted += n
            if n < CHUNK:
                return deleted

    async def close(self) -> None:
        self._closed = True
        await self.retention.close()
        await self.drain()
        self._shut = True
        if self._reconnect is not None:
            self._reconnect.cancel()
            await asyncio.wait([self._reconnect])
        opening, self._opening = self._opening, None
        if opening is not None and not opening.done():
            opening.cancel()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), CONNECT_TIMEOUT_S)
            except (*_ERRORS, TimeoutError):
                pool.terminate()
