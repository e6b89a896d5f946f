"""asyncpg through the sidecar across switches: its statement cache and its type cache (it
decodes binary records and checks their field types against what it learned), binary
parameters and results of an enum, a composite with an enum field, a domain and arrays of
each, LISTEN/NOTIFY, COPY, a cancelled query, executemany, and a transaction open when a
switch is asked for."""

import asyncio
import os
import sys

import asyncpg

from switcher import begin_switch, check, done, switch, wait_switch

ROW = "SELECT m, p, s, ms, ps, ss FROM readings WHERE id = 1"
HOME_LEVEL = int(os.environ["PGFLIP_HOME_LEVEL_OID"])


async def meet_level(conn):
    """A type first met away from home: asyncpg introspects it by OID (an oid[] parameter)
    and must learn home OIDs; lookups by name and by OID answer home OIDs too."""
    row = await conn.fetchrow("SELECT 'high'::level AS l, ARRAY['low', 'high']::level[] AS ls")
    check(row["l"] == "high" and list(row["ls"]) == ["low", "high"], row)
    stmt = await conn.prepare("SELECT 'high'::level AS l")
    check(stmt.get_attributes()[0].type.oid == HOME_LEVEL, stmt.get_attributes())
    oid = await conn.fetchval("SELECT oid FROM pg_catalog.pg_type WHERE typname = 'level'")
    check(oid == HOME_LEVEL, oid)
    name = await conn.fetchval("SELECT typname::text FROM pg_catalog.pg_type WHERE oid = $1", HOME_LEVEL)
    check(name == "level", name)


async def main(dsn, tag):
    conn = await asyncpg.connect(dsn, statement_cache_size=100)
    notified = []
    await conn.add_listener("driver_" + tag, lambda *args: notified.append(args[3]))
    sides = []
    for round_ in range(4):
        if round_ == 1:
            await meet_level(conn)
        row = await conn.fetchrow(ROW)
        check(row["m"] == "happy", row)
        check(tuple(row["p"]) == ("ok", 7), row)
        check(row["s"] == 3, row)
        check(list(row["ms"]) == ["sad", "happy"], row)
        check([tuple(p) for p in row["ps"]] == [("sad", 1)], row)
        check(list(row["ss"]) == [1, 2], row)
        key = await conn.fetchval(
            "INSERT INTO readings (m, p, s, ms, ps, ss, who) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            "ok", ("happy", round_), 5, ["ok", "sad"], [("ok", 9)], [4], tag,
        )
        back = await conn.fetchrow("SELECT p, ps FROM readings WHERE id = $1", key)
        check(tuple(back["p"]) == ("happy", round_) and tuple(back["ps"][0]) == ("ok", 9), back)
        # Blue and green are not kept in step here: count what this round adds on this side.
        before = await conn.fetchval("SELECT count(*) FROM plain WHERE who = $1", tag)
        await conn.executemany("INSERT INTO plain (who, n) VALUES ($1, $2)", [(tag, i) for i in range(5)])
        await conn.copy_to_table("plain", source=_rows(tag, round_), columns=["who", "n"], format="text")
        added = await conn.fetchval("SELECT count(*) FROM plain WHERE who = $1", tag) - before
        check(added == 10, added)
        await conn.execute(f"NOTIFY driver_{tag}, 'round {round_}'")
        try:
            await conn.execute("SELECT pg_sleep(5)", timeout=0.2)
            check(False, "the sleep was not cancelled")
        except asyncio.TimeoutError:
            pass
        check(await conn.fetchval("SELECT 1") == 1, "usable after the cancel")
        sides.append(switch())
    async with conn.transaction():
        await conn.execute("INSERT INTO plain (who, n) VALUES ($1, -1)", tag)
        begin_switch()
        await asyncio.sleep(0.5)
    sides.append(wait_switch())
    row = await conn.fetchrow(ROW)
    check(tuple(row["p"]) == ("ok", 7), row)
    await asyncio.sleep(0.2)
    check(len(notified) == 4, notified)
    await conn.close()
    done(",".join(sides))


def _rows(tag, round_):
    async def source():
        for i in range(5):
            yield f"{tag}\t{100 * round_ + i}\n".encode()
    return source()


asyncio.run(main(sys.argv[1], sys.argv[2]))
