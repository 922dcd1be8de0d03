"""Screen-pop benchmark: the caller lookup at the store with 1,000,000 customers in PostgreSQL.

    python load/bench_screenpop.py                      # 1,000,000 customers, 2,000 lookups
    python load/bench_screenpop.py --customers 100000   # smaller, quicker

Makes a fresh database (dropped afterwards unless --keep), migrates it, bulk-loads the customers and
one number each (COPY, in batches; 10 % of them in a second tenant), then times lookups of random
known numbers exactly as the pop does them (`CustomerService.find` minus the cache: normalise the
caller, `CustomerRepo.ids_by_number`, `CustomerRepo.matches` with numbers and last contacts), and the
index query alone. A handful of the same lookups run again with index scans turned off (a sequential
scan of customer_numbers, what the pop would cost without the index); the ratio is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import asyncpg  # noqa: E402
from sqlalchemy import text  # noqa: E402

from store.customers import CustomerRepo, normalise  # noqa: E402
from store.db import make_engine, make_sessionmaker  # noqa: E402
from store.migrate import upgrade  # noqa: E402

BATCH = 100_000
MULT = 48_271  # coprime with 10**9: i -> i * MULT mod 10**9 is a bijection, so numbers are unique


def number_of(i: int) -> str:
    return f"+4915{(i * MULT) % 10**9:09d}"


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def fill(conn: asyncpg.Connection, n: int, main: int, other: int, first: int = 1) -> None:
    """COPY n customers with one number each, ids first.., every tenth into `other` (customer i of
    the run gets id first + i - 1 and the number `number_of(i)`)."""
    now = time.time()
    names = ["Erika", "Max", "Anna", "Paul", "Lena", "Jonas", "Mia", "Felix", "Emma", "Noah"]
    last = ["Muster", "Meyer", "Schmidt", "Schulz", "Weber", "Wagner", "Becker", "Hoffmann", "Koch", "Richter"]
    off = first - 1
    for start in range(0, n, BATCH):
        ids = range(start + 1, min(n, start + BATCH) + 1)
        await conn.copy_records_to_table(
            "customers",
            columns=["id", "tenant_id", "first_name", "last_name", "company", "email", "fields", "created_at",
                     "updated_at"],
            records=[(off + i, other if i % 10 == 0 else main, names[i % 10], f"{last[(i // 10) % 10]}{i}", None,
                      None, "{}", now, now) for i in ids],
        )
        await conn.copy_records_to_table(
            "customer_numbers", columns=["tenant_id", "customer_id", "number", "label"],
            records=[(other if i % 10 == 0 else main, off + i, number_of(i), "mobile") for i in ids],
        )
        print(f"  loaded {ids[-1]:,} customers", end="\r", flush=True)
    await conn.execute("SELECT setval(pg_get_serial_sequence('customers', 'id'), (SELECT max(id) FROM customers))")
    await conn.execute("ANALYZE customers; ANALYZE customer_numbers")


async def load(pg: str, db: str, n: int) -> tuple[int, int]:
    conn = await asyncpg.connect(f"{pg}/{db}")
    try:
        now = time.time()
        main = await conn.fetchval("INSERT INTO tenants (slug, name, settings, created_at) VALUES "
                                   "('bench', 'Bench', '{\"customers.region\": \"DE\"}', $1) RETURNING id", now)
        other = await conn.fetchval("INSERT INTO tenants (slug, name, settings, created_at) VALUES "
                                    "('other', 'Other', '{}', $1) RETURNING id", now)
        await fill(conn, n, main, other)
        return main, other
    finally:
        await conn.close()


async def bench(args: argparse.Namespace) -> None:
    db = f"udbench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(f"{args.pg}/postgres")
    await admin.execute(f'CREATE DATABASE "{db}"')
    url = f"{args.pg.replace('postgresql://', 'postgresql+asyncpg://')}/{db}"
    engine = None
    try:
        upgrade(url)
        t0 = time.perf_counter()
        tenant, _ = await load(args.pg, db, args.customers)
        print(f"\nloaded {args.customers:,} customers and numbers in {time.perf_counter() - t0:.1f} s")
        engine = make_engine(url)
        sm = make_sessionmaker(engine)
        rng = random.Random(7)
        known = [i for i in (rng.randint(1, args.customers) for _ in range(args.samples * 2)) if i % 10][: args.samples]

        async def pop(s, i: int) -> list:  # type: ignore[no-untyped-def]
            repo = CustomerRepo(s, tenant)
            number = normalise(number_of(i).replace("+49", "0"), "DE")  # callers dial nationally
            return await repo.matches(await repo.ids_by_number(number))

        full: list[float] = []
        query: list[float] = []
        async with sm() as s:
            for i in known[:50]:  # warm the pool and the cache of the plan
                await pop(s, i)
            for i in known:
                a = time.perf_counter()
                ids = await CustomerRepo(s, tenant).ids_by_number(number_of(i))
                b = time.perf_counter()
                got = await pop(s, i)
                c = time.perf_counter()
                assert ids == [i] and got[0].customer.id == i, (i, ids)
                query.append((b - a) * 1000)
                full.append((c - b) * 1000)
            plan = (await s.execute(text(
                "EXPLAIN SELECT customer_id FROM customer_numbers WHERE tenant_id = :t AND number = :n "
                "ORDER BY customer_id LIMIT 5"),
                {"t": tenant, "n": number_of(known[0])})).scalars().all()
        scan: list[float] = []
        scan_plan: list[str] = []
        # A new engine: its connections hold no statement planned with the index (asyncpg prepares
        # statements, and a cached plan would ignore the settings below).
        scan_engine = make_engine(url)
        async with make_sessionmaker(scan_engine)() as s, s.begin():
            for setting in ("enable_indexscan", "enable_bitmapscan", "enable_indexonlyscan"):
                await s.execute(text(f"SET LOCAL {setting} = off"))
            scan_plan = (await s.execute(text(
                "EXPLAIN SELECT customer_id FROM customer_numbers WHERE tenant_id = :t AND number = :n "
                "ORDER BY customer_id LIMIT 5"),
                {"t": tenant, "n": number_of(known[0])})).scalars().all()
            for i in known[: args.scan_samples]:
                a = time.perf_counter()
                ids = await CustomerRepo(s, tenant).ids_by_number(number_of(i))
                scan.append((time.perf_counter() - a) * 1000)
                assert ids == [i]
        await scan_engine.dispose()
        print("plan with the index:   ", " / ".join(p.strip() for p in plan if "->" in p or p is plan[0])[:200])
        print("plan without (forced): ", " / ".join(p.strip() for p in scan_plan if "->" in p or p is scan_plan[0])[:200])
        print(f"lookups: {len(known)} random known numbers of {args.customers:,} customers (tenant-scoped)")
        print(f"  number query alone  p50 {statistics.median(query):7.3f} ms   p99 {pct(query, 99):7.3f} ms")
        print(f"  whole store pop     p50 {statistics.median(full):7.3f} ms   p99 {pct(full, 99):7.3f} ms"
              "   (normalise, numbers, customers, their numbers and last contacts)")
        print(f"  sequential scan     p50 {statistics.median(scan):7.3f} ms   ({len(scan)} samples, index scans off)")
        print(f"  ratio scan / indexed query (p50): {statistics.median(scan) / statistics.median(query):,.0f}x")
        ok = pct(full, 99) < 50.0
        print(f"aim: store pop p99 under 50 ms: {'met' if ok else 'MISSED'}")
    finally:
        if engine is not None:
            await engine.dispose()
        if not args.keep:
            await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        else:
            print(f"kept database {db}")
        await admin.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pg", default=os.environ.get("UNIDESK_TEST_PG", "postgresql://postgres@127.0.0.1:5432"))
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--scan-samples", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    asyncio.run(bench(ap.parse_args()))


if __name__ == "__main__":
    main()
