"""psycopg 3 through the sidecar across switches: types looked up by name and registered
(enum, composite with an enum field), binary results and parameters, prepared statements
(prepare_threshold=0: every query is prepared), pipeline mode, LISTEN/NOTIFY, COPY, a
cancelled query and a transaction open when a switch is asked for."""

import os
import sys
import threading
import time

import psycopg
from psycopg.types.composite import CompositeInfo, register_composite
from psycopg.types.enum import EnumInfo, register_enum

from switcher import begin_switch, check, done, switch, wait_switch

HOME_LEVEL = int(os.environ["PGFLIP_HOME_LEVEL_OID"])


def meet_level(conn):
    """A type first met away from home: psycopg looks it up by name and registers its OID,
    which must be the home one, for binary results to load."""
    info = EnumInfo.fetch(conn, "level")
    check(info.oid == HOME_LEVEL, info.oid)
    register_enum(info, conn)
    with conn.cursor(binary=True) as cur:
        cur.execute("SELECT 'high'::level, ARRAY['low', 'high']::level[]")
        level, levels = cur.fetchone()
        check(level.name == "high" and [x.name for x in levels] == ["low", "high"], (level, levels))


def main(dsn, tag):
    conn = psycopg.connect(dsn, autocommit=True, prepare_threshold=0)
    register_enum(EnumInfo.fetch(conn, "mood"), conn)
    pair = CompositeInfo.fetch(conn, "pair")
    register_composite(pair, conn)
    conn.execute(f"LISTEN driver_{tag}")
    sides = []
    for round_ in range(4):
        if round_ == 1:
            meet_level(conn)
        with conn.cursor(binary=True) as cur:
            cur.execute("SELECT m, p, s, ms, ps FROM readings WHERE id = 1")
            m, p, s, ms, ps = cur.fetchone()
            check(m.name == "happy", m)
            check((p.m.name, p.n) == ("ok", 7), p)
            check(s == 3, s)
            check([x.name for x in ms] == ["sad", "happy"], ms)
            check([(x.m.name, x.n) for x in ps] == [("sad", 1)], ps)
            cur.execute(
                "INSERT INTO readings (m, p, s, who) VALUES (%s, %s, %s, %s) RETURNING p",
                (m, pair.python_type(m, round_), 4, tag),
            )
            (back,) = cur.fetchone()
            check((back.m.name, back.n) == ("happy", round_), back)
        # Blue and green are not kept in step here: count what this round adds on this side.
        count = "SELECT count(*) FROM plain WHERE who = %s"
        before = conn.execute(count, (tag,)).fetchone()[0]
        with conn.pipeline():
            for i in range(5):
                conn.execute("INSERT INTO plain (who, n) VALUES (%s, %s)", (tag, i))
        with conn.cursor() as cur:
            with cur.copy("COPY plain (who, n) FROM STDIN") as copy:
                for i in range(5):
                    copy.write_row((tag, 100 * round_ + i))
        added = conn.execute(count, (tag,)).fetchone()[0] - before
        check(added == 10, added)
        conn.execute(f"NOTIFY driver_{tag}, 'round {round_}'")
        cancelled = False
        timer = threading.Timer(0.2, conn.cancel)
        timer.start()
        try:
            conn.execute("SELECT pg_sleep(5)")
        except psycopg.errors.QueryCanceled:
            cancelled = True
        timer.join()
        check(cancelled, "the sleep was cancelled")
        check(conn.execute("SELECT 1").fetchone()[0] == 1, "usable after the cancel")
        sides.append(switch())
    with conn.transaction():
        conn.execute("INSERT INTO plain (who, n) VALUES (%s, -1)", (tag,))
        begin_switch()
        time.sleep(0.5)
    sides.append(wait_switch())
    notes = [n.payload for n in conn.notifies(timeout=1, stop_after=4)]
    check(notes == [f"round {i}" for i in range(4)], notes)
    conn.close()
    done(",".join(sides))


main(sys.argv[1], sys.argv[2])
