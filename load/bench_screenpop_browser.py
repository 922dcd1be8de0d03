"""Screen pop in the browser: from a call's arrival to the customer's record drawn on the agent's
desktop, with 1,000,000 customers in PostgreSQL.

    python load/bench_screenpop_browser.py                       # 1,000,000 customers, 200 pops each way
    python load/bench_screenpop_browser.py --customers 100000 --samples 50

World: a fresh PostgreSQL database and Redis prefix, migrated and seeded with the demo tenant (and
a second tenant holding a tenth of the customers, so every lookup is tenant-scoped), the customers
bulk-loaded as in bench_screenpop.py; a hub (`unidesk serve`) on a free loopback port; headless
Chromium with agent2's desktop, available, every other agent logged out.

One sample: the clock starts when the contact is posted to the hub (`POST /api/contacts`, as the
SIP gateway submits an arrival) and stops at the first animation frame after the desktop drew the
result (a MutationObserver in the page stamps the change, a requestAnimationFrame the paint; both
clocks are the machine's wall clock). Then the contact is abandoned and the desktop waits idle
again. Two kinds, interleaved:
- known caller: the ACD offers with the store pop's brief of the one customer found (name,
  company, numbers, last contacts), which the desktop draws at once (`#customer[data-customer-id]`,
  the name); then it fetches the full record and history and redraws (`data-record="full"`), timed
  as a second figure;
- unknown caller (the baseline, same path without a record): the pop finds nobody and the desktop
  draws the "new customer" form.
The ratio known / unknown is what finding and drawing a record among a million adds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import asyncpg  # noqa: E402
import httpx  # noqa: E402

from bench_screenpop import fill, number_of, pct  # noqa: E402
from hubload.common import PG_BASE, REDIS_URL, ROOT, free_port  # noqa: E402
from hubload.servers import Server  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]

# Stamps what the desktop draws: a record by customer id, a "new customer" form by contact id.
OBSERVER = """() => {
  window.__drawn = {};
  const box = document.querySelector('#customer');
  const stamp = (key) => {
    if (key in window.__drawn) return;
    const seen = performance.timeOrigin + performance.now();
    window.__drawn[key] = { seen, painted: null };
    requestAnimationFrame(() => { window.__drawn[key].painted = performance.timeOrigin + performance.now(); });
  };
  const look = () => {
    if (box.hidden) return;
    const name = document.querySelector('#customer-name');
    if (box.dataset.customerId && name && name.textContent) {
      stamp('c' + box.dataset.customerId);  // first drawn: the offer's brief, or the record
      if (box.dataset.record === 'full') stamp('f' + box.dataset.customerId);
    }
    const form = document.querySelector('#customer-new');
    const number = document.querySelector('#customer-new [name=number]');
    if (box.dataset.matches === '0' && form && !form.hidden && number && number.dataset.contactId)
      stamp('n' + number.dataset.contactId);
  };
  new MutationObserver(look).observe(box, { attributes: true, childList: true, subtree: true, characterData: true });
}"""


def cli(env: dict[str, str], *args: str) -> None:
    out = subprocess.run([sys.executable, "-m", "realtime.cli", *args], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"unidesk {' '.join(args)} failed: {out.stderr.strip()[-2000:]}")


async def load_customers(db: str, n: int) -> tuple[int, int]:
    """Bulk-load n customers into the demo tenant (a tenth into acme); return (demo id, first id)."""
    conn = await asyncpg.connect(f"{PG_BASE}/{db}")
    try:
        demo = await conn.fetchval("SELECT id FROM tenants WHERE slug = 'demo'")
        acme = await conn.fetchval("SELECT id FROM tenants WHERE slug = 'acme'")
        await conn.execute("UPDATE tenants SET settings = (settings::jsonb || '{\"customers.region\": \"DE\"}')::json "
                           "WHERE id = $1", demo)
        first = (await conn.fetchval("SELECT coalesce(max(id), 0) FROM customers")) + 1
        await fill(conn, n, demo, acme, first)
        return demo, first
    finally:
        await conn.close()


def sample(page, api: httpx.Client, admin: dict[str, str], caller: str, keys_of) -> list[float]:  # type: ignore[no-untyped-def]
    """Post one contact; the times (ms) from the post to each of `keys_of(contact id)` painted."""
    t0 = time.time() * 1000
    r = api.post("/api/contacts", json={"queue": "support", "caller": caller}, headers=admin)
    r.raise_for_status()
    cid = r.json()["contact_id"]
    out = []
    for key in keys_of(cid):
        page.wait_for_function("(k) => window.__drawn[k] && window.__drawn[k].painted", arg=key, timeout=30_000)
        out.append(page.evaluate("(k) => window.__drawn[k].painted", key) - t0)
    api.post(f"/api/contacts/{cid}/abandon", headers=admin).raise_for_status()
    page.wait_for_selector("#contact", state="hidden", timeout=30_000)
    page.wait_for_function("() => document.querySelector('#state-label').textContent === 'Available'", timeout=30_000)
    return out


def run(args: argparse.Namespace) -> None:
    from playwright.sync_api import sync_playwright

    tag = secrets.token_hex(4)
    db = f"udbench_{tag}"
    prefix = f"udbench-{tag}"
    logs = Path(tempfile.mkdtemp(prefix="screenpop-"))
    env = {**os.environ, "UNIDESK_SECRET": "bench-" + secrets.token_urlsafe(40), "UNIDESK_LOG_LEVEL": "WARNING",
           "UNIDESK_DATABASE_URL": f"{PG_BASE}/{db}", "UNIDESK_REDIS_URL": REDIS_URL,
           "UNIDESK_REDIS_PREFIX": prefix}

    async def admin_sql(sql: str) -> None:
        conn = await asyncpg.connect(f"{PG_BASE}/postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin_sql(f'CREATE DATABASE "{db}"'))
    hub = None
    try:
        cli(env, "migrate")
        cli(env, "seed-demo")
        cli(env, "seed-demo", "--tenant", "acme", "--name", "Acme")
        t = time.perf_counter()
        demo, first = asyncio.run(load_customers(db, args.customers))
        print(f"\nloaded {args.customers:,} customers and numbers in {time.perf_counter() - t:.1f} s")
        port = free_port()
        hub = Server([sys.executable, "-m", "realtime.cli", "serve"], {**env, "UNIDESK_PORT": str(port)},
                     logs / "hub.log", port)
        hub.wait_healthy()
        api = httpx.Client(base_url=hub.url, trust_env=False, timeout=30)

        def login(user: str) -> dict[str, str]:
            r = api.post("/api/auth/login", json={"tenant": "demo", "username": user, "password": "demo"})
            r.raise_for_status()
            return {"Authorization": f"Bearer {r.json()['access_token']}"}

        admin, sup = login("admin"), login("supervisor")
        agents = {a["username"]: a["id"] for a in api.get("/api/agents", headers=sup).json()}
        for name, uid in agents.items():
            if name != "agent2":
                r = api.post(f"/api/agents/{uid}/state", json={"state": "logged-out"}, headers=sup)
                if r.status_code != 409:  # 409: already logged out
                    r.raise_for_status()
        rng = random.Random(11)
        # Demo-tenant customers only (every tenth went to acme), each popped once.
        known = rng.sample([i for i in range(1, args.customers + 1) if i % 10], args.samples + args.warmup)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_context().new_page()
            page.goto(hub.url + "/")
            page.fill("input[name=username]", "agent2")
            page.fill("input[name=password]", "demo")
            page.click("button[type=submit]")
            page.wait_for_function("() => document.querySelector('#conn')?.textContent === 'Connected'", timeout=30_000)
            page.click("#go-available")
            page.wait_for_function("() => document.querySelector('#state-label').textContent === 'Available'")
            page.evaluate(OBSERVER)
            record: list[float] = []
            full: list[float] = []
            new: list[float] = []
            for n, i in enumerate(known):
                cust = first + i - 1
                # Callers dial nationally; the pop normalises with the tenant's region.
                a, f = sample(page, api, admin, number_of(i).replace("+49", "0"), lambda cid, c=cust: [f"c{c}", f"f{c}"])
                (b,) = sample(page, api, admin, f"030 9{n:07d}", lambda cid: [f"n{cid}"])
                if n >= args.warmup:
                    record.append(a)
                    full.append(f)
                    new.append(b)
            browser.close()
        print(f"pops: {len(record)} known callers among {args.customers:,} customers, {len(new)} unknown callers,"
              " interleaved; arrival -> drawn and painted in Chromium")
        print(f"  known caller, record drawn      p50 {statistics.median(record):7.1f} ms   p99 {pct(record, 99):7.1f} ms"
              "   (the pop's brief with the offer: name, company, numbers, last contacts)")
        print(f"  known caller, full record       p50 {statistics.median(full):7.1f} ms   p99 {pct(full, 99):7.1f} ms"
              "   (after GET /api/customers/{id} and its history)")
        print(f"  unknown caller, form (baseline) p50 {statistics.median(new):7.1f} ms   p99 {pct(new, 99):7.1f} ms")
        print(f"  ratio known / unknown: p50 {statistics.median(record) / statistics.median(new):.2f}"
              f"   p99 {pct(record, 99) / pct(new, 99):.2f}")
        print(f"  load average during the run: {os.getloadavg()[0]:.2f}")
    finally:
        if hub is not None:
            hub.stop()
        asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        import redis

        r = redis.Redis.from_url(REDIS_URL)
        for k in r.scan_iter(match=f"{prefix}:*", count=1000):
            r.delete(k)
        r.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--samples", type=int, default=200, help="pops of each kind measured")
    ap.add_argument("--warmup", type=int, default=10, help="pops of each kind before measuring")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    run(ap.parse_args())


if __name__ == "__main__":
    main()
