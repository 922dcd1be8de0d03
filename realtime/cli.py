"""`unidesk` command line: run, serve, migrate, seed-demo (and the ACD tools)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import subprocess
import sys
from collections.abc import Sequence

from realtime.config import ConfigError, Settings, load_settings

DEMO_BANNER = """
  unidesk is running: {url}

  Demo tenant "demo", password "demo" for every user:
    agent desktop     agent1 … agent5
    supervisor board  supervisor
    also              admin, trainer

  Stop with Ctrl+C.
"""


def _migrate(settings: Settings) -> None:
    from store.migrate import upgrade

    upgrade(settings.database_url)


async def _seed(settings: Settings, slug: str = "demo", name: str = "Demo Contact Center") -> bool:
    from realtime.auth import hash_password
    from store.db import make_engine, make_sessionmaker
    from store.seed import seed_demo

    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            return await seed_demo(session, hash_password, slug, name)
    finally:
        await engine.dispose()


async def _trunk(settings: Settings, args: argparse.Namespace) -> int:
    """`unidesk trunk add|list|remove`: the tenant's SIP trunks in the store (workers get them at their next hello)."""
    from store.db import make_engine, make_sessionmaker
    from store.repos import TenantRepo, tenant_by_slug

    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            tenant = await tenant_by_slug(session, args.tenant)
            if tenant is None:
                print(f"unidesk: no tenant {args.tenant!r}", file=sys.stderr)
                return 2
            repo = TenantRepo(session, tenant.id)
            have = {t.name: t for t in await repo.sip_trunks()}
            if args.action == "list":
                for t in have.values():
                    print(f"{t.name}\t{t.transport}:{t.host}\tuser {t.username}\trealm {t.realm}\t"
                          f"{'register' if t.register else 'no register'} {t.expires}s\t"
                          f"caller id {t.caller_id or '-'}\t{'enabled' if t.enabled else 'disabled'}")
                return 0
            if args.action == "remove":
                if args.name not in have:
                    print(f"unidesk: tenant {args.tenant} has no trunk {args.name!r}", file=sys.stderr)
                    return 2
                await session.delete(have[args.name])
                print(f"trunk {args.name} removed")
                return 0
            if args.name in have:
                print(f"unidesk: tenant {args.tenant} has a trunk {args.name!r} already", file=sys.stderr)
                return 2
            # The secret never goes on the command line (other users see it in the process list).
            password = os.environ.get("UNIDESK_TRUNK_PASSWORD") or sys.stdin.readline().rstrip("\n")
            if not password:
                print("unidesk: the trunk's password comes from UNIDESK_TRUNK_PASSWORD or the first line of "
                      "standard input", file=sys.stderr)
                return 2
            try:
                await repo.add_sip_trunk(
                    args.name, args.host, args.username, password, transport=args.transport, realm=args.realm,
                    register=not args.no_register, expires=args.expires, caller_id=args.caller_id,
                )
            except ValueError as exc:
                print(f"unidesk: {exc}", file=sys.stderr)
                return 2
            print(f"trunk {args.name} added; media workers get it when they next connect")
            return 0
    finally:
        await engine.dispose()


def _serve(settings: Settings, banner: str | None = None) -> None:
    import uvicorn

    from realtime.app import build_app
    from realtime.logs import setup_logging

    setup_logging(settings.log_level, settings.log_json)
    app = build_app(settings)
    # The hub keeps many long-lived objects (connections, directories, queues): without this the
    # cyclic collector walks all of them again and again, which showed as pauses of a second
    # under 5,000 connections (load/bench_hub.py). Objects alive at start are left out for good.
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 1_000)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        # The sans-I/O websockets implementation: measured faster on fan-out than the legacy one.
        # Compression is off: board frames are small and deflate per connection costs CPU per frame.
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        # Frames over the limit close the connection with 1009 (RFC 6455 §7.4.1).
        ws_max_size=settings.max_frame_bytes,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        lifespan="on",
        server_header=False,
    )
    server = uvicorn.Server(config)
    if banner:
        print(banner, flush=True)
    server.run()


def _create_contact(args: argparse.Namespace) -> int:
    import json
    import os
    import urllib.error
    import urllib.request

    url = args.url or f"http://{os.environ.get('UNIDESK_HOST') or '127.0.0.1'}:{os.environ.get('UNIDESK_PORT') or 8000}"
    data = {}
    for item in args.data:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"unidesk: --data {item!r} is not KEY=VALUE", file=sys.stderr)
            return 2
        data[key] = value

    def post(path: str, body: dict, token: str | None = None) -> dict:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(url + path, json.dumps(body).encode(), headers, method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    password = args.password or os.environ.get("UNIDESK_ADMIN_PASSWORD") or "demo"
    try:
        tokens = post("/api/auth/login", {"tenant": args.tenant, "username": args.user, "password": password})
        body = {"queue": args.queue, "caller": args.caller, "priority": args.priority, "data": data}
        if args.name:
            body["caller_name"] = args.name
        out = post("/api/contacts", body, tokens["access_token"])
    except urllib.error.HTTPError as exc:
        detail = json.loads(exc.read() or b"{}").get("message", exc.reason)
        print(f"unidesk: {detail}", file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(f"unidesk: cannot reach {url}: {exc.reason}", file=sys.stderr)
        return 1
    print(out["contact_id"])
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="unidesk", description="Self-hostable contact center.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="embedded default: migrate, seed the demo tenant, start the hub")
    sub.add_parser("serve", help="start the hub only, configured by UNIDESK_* variables")
    sub.add_parser("migrate", help="bring the database schema up to date")
    seed = sub.add_parser("seed-demo", help="create the demo tenant if it does not exist")
    seed.add_argument("--tenant", default="demo", help="tenant slug (default: demo)")
    seed.add_argument("--name", default="Demo Contact Center", help="tenant display name")
    contact = sub.add_parser("contact", help="create a contact in a queue through a running hub (demos, tests)")
    contact.add_argument("--queue", required=True)
    contact.add_argument("--caller", required=True, help="the caller's number, e.g. +4930123456")
    contact.add_argument("--name", help="the caller's name")
    contact.add_argument("--priority", type=int, default=0)
    contact.add_argument("--data", action="append", default=[], metavar="KEY=VALUE", help="a field shown to the agent")
    contact.add_argument("--url", default=None, help="hub URL (default http://UNIDESK_HOST:UNIDESK_PORT)")
    contact.add_argument("--tenant", default="demo")
    contact.add_argument("--user", default="admin")
    contact.add_argument("--password", default=None, help="default: UNIDESK_ADMIN_PASSWORD or 'demo'")
    trunk = sub.add_parser("trunk", help="a tenant's SIP trunks: add, list, remove (see docs/sip.md)")
    trunk.add_argument("action", choices=("add", "list", "remove"))
    trunk.add_argument("--tenant", default="demo")
    trunk.add_argument("--name", help="unique per tenant (add, remove)")
    trunk.add_argument("--host", help="registrar and proxy, host:port")
    trunk.add_argument("--transport", default="udp", help="udp, tcp or tls (default udp)")
    trunk.add_argument("--username", help="digest user name")
    trunk.add_argument("--realm", default="*", help="digest realm of the credentials (default *: any)")
    trunk.add_argument("--no-register", action="store_true", help="only call out through it")
    trunk.add_argument("--expires", type=int, default=300, help="registration lifetime, seconds (default 300)")
    trunk.add_argument("--caller-id", default=None, help="the number presented on calls out (default: username)")
    sim = sub.add_parser("simulate", help="run the ACD on synthetic traffic (see docs/acd.md)", add_help=False)
    sim.add_argument("rest", nargs=argparse.REMAINDER)
    erl = sub.add_parser("erlang", help="Erlang C staffing figures", add_help=False)
    erl.add_argument("rest", nargs=argparse.REMAINDER)
    mw = sub.add_parser("media-worker", help="start a media worker for a hub (softphone audio)", add_help=False)
    mw.add_argument("rest", nargs=argparse.REMAINDER)
    bot = sub.add_parser("bot-agent", help="a headless agent with a softphone (load tests, checks)", add_help=False)
    bot.add_argument("rest", nargs=argparse.REMAINDER)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("media-worker", "bot-agent"):
        # Both are clients of the hub; they live in webrtc/ and own their options.
        if argv[0] == "media-worker":
            from webrtc.worker import main as client_main
        else:
            from webrtc.bot import main as client_main
        return client_main(argv[1:])
    if argv and argv[0] in ("simulate", "erlang"):
        # These tools own their options (`unidesk erlang --help`).
        from realtime.acd import simulate

        fn = simulate.main_simulate if argv[0] == "simulate" else simulate.main_erlang
        return fn(argv[1:])
    args = parser.parse_args(argv)

    if args.command == "contact":
        return _create_contact(args)
    try:
        settings = load_settings(
            embedded=args.command == "run", need_secret=args.command in ("run", "serve")
        )
    except ConfigError as exc:
        print(f"unidesk: {exc}", file=sys.stderr)
        return 2

    if args.command == "migrate":
        _migrate(settings)
        print("database is up to date")
        return 0
    if args.command == "trunk":
        missing = [f"--{n}" for n in (("name", "host", "username") if args.action == "add" else
                                      ("name",) if args.action == "remove" else ()) if not getattr(args, n)]
        if missing:
            print(f"unidesk: trunk {args.action} needs {', '.join(missing)}", file=sys.stderr)
            return 2
        return asyncio.run(_trunk(settings, args))
    if args.command == "seed-demo":
        created = asyncio.run(_seed(settings, args.tenant, args.name))
        print(f"tenant {args.tenant} " + ("created" if created else "already exists"))
        return 0
    if args.command == "run":
        _migrate(settings)
        asyncio.run(_seed(settings))
        # A media worker beside the hub, in a process of its own (media must not share the hub's CPU).
        worker = subprocess.Popen(
            [sys.executable, "-m", "webrtc.worker", "--name", "embedded", "--parent", str(os.getpid())],
            env={**os.environ, "UNIDESK_SECRET": settings.secret},
        )
        try:
            _serve(settings, DEMO_BANNER.format(url=f"http://{settings.host}:{settings.port}/"))
        finally:
            worker.terminate()
            try:
                worker.wait(10)
            except subprocess.TimeoutExpired:
                worker.kill()
        return 0
    if args.command == "serve":
        _serve(settings)
        return 0
    return 2  # pragma: no cover - argparse rejects other commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
