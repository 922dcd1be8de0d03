"""The composition root: settings → store → live store/bus → services → routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from realtime import api, customers as customers_api, knowledge_api, recordings_api, reports, teams, wallboards, webinars
from realtime import forms_api, queues as queues_api
from realtime import scripts as scripts_api
from realtime.agents import AgentService
from realtime.auth import LoginThrottle, RedisLoginThrottle, TokenService
from realtime.config import Settings
from realtime.contacts import Busy, ContactCenter
from realtime.deskphones import DeskPhones
from realtime.crm import CrmService
from realtime.customers import CustomerService
from realtime.directory import Directory
from realtime.history import HistoryWriter
from realtime.hub import Hub
from realtime.live import LiveStore, RedisLiveStore, make_live_store
from realtime.metrics import Metrics
from realtime.phone import PhoneService
from realtime.recordings import Recordings, RetentionJob
from realtime.sipcalls import SipCalls
from realtime.transfers import Transfers
from realtime.monitors import Monitors
from realtime.chat import Chat
from realtime.support import Support
from realtime import support as support_api, support_send
from realtime.knowledge import Knowledge
from realtime.scripts import ScriptService
from realtime.alerts import Alerts, LiveCalls
from realtime.trunks import TrunkService
from store.db import make_engine, make_sessionmaker

log = logging.getLogger("unidesk.app")

STATIC = Path(__file__).resolve().parent.parent / "desktop_web" / "static"


@dataclass
class Context:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    live: LiveStore
    directory: Directory
    history: HistoryWriter
    agents: AgentService
    tokens: TokenService
    throttle: LoginThrottle
    metrics: Metrics
    hub: Hub
    contacts: ContactCenter
    phone: PhoneService
    retention: RetentionJob
    trunks: TrunkService
    customers: CustomerService
    crm: CrmService
    knowledge: Knowledge
    forms: forms_api.Forms | None = None
    queue_settings: queues_api.QueueSettings | None = None
    desk: DeskPhones | None = None
    support: Support | None = None
    scripts: ScriptService | None = None

    async def db_ok(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:  # health check: any failure means "not healthy"
            return False


def build_context(settings: Settings) -> Context:
    engine = make_engine(settings.database_url)
    sessionmaker = make_sessionmaker(engine)
    live = make_live_store(settings.redis_url, settings.redis_prefix, settings.replay_events)
    directory = Directory(sessionmaker)
    metrics = Metrics()
    history = HistoryWriter(sessionmaker)
    agents = AgentService(live, history, directory, metrics=metrics)
    tokens = TokenService(settings.secret, settings.access_ttl, settings.refresh_ttl)
    throttle: LoginThrottle
    if isinstance(live, RedisLiveStore):
        throttle = RedisLoginThrottle(live.redis, settings.redis_prefix)
    else:
        throttle = LoginThrottle()
    contacts = ContactCenter(live, sessionmaker, directory, agents)
    crm = CrmService(live, sessionmaker, lambda: contacts.leading, lambda t: customers.tenant(t))
    customers = CustomerService(sessionmaker, crm)
    contacts.screen_pop = customers.pop
    phone = PhoneService(
        live, sessionmaker, directory, on_busy=lambda t, a, on: contacts.submit(Busy(tenant_id=t, agent_id=a, on=on))
    )
    sip = SipCalls(live, sessionmaker, phone, contacts)
    transfers = Transfers(live, sessionmaker, phone, sip, contacts)
    chat = Chat(live, sessionmaker, directory, agents)
    knowledge = Knowledge(live, sessionmaker, directory)
    scripts = ScriptService(sessionmaker, knowledge)
    contacts.observe(scripts)  # a contact is pinned to the script version published when it is offered
    monitors = Monitors(live, sessionmaker, phone, sip, chat)
    live_calls = LiveCalls(live, sessionmaker, phone, sip)
    alerts = Alerts(live, sessionmaker, contacts, agents, live_calls)
    recordings = Recordings(live, sessionmaker, phone, sip, settings.recordings_dir)
    trunks = TrunkService(live, sessionmaker, phone)
    desk = DeskPhones(live, sessionmaker, phone, contacts)
    support = Support(live, sessionmaker, directory, tokens, settings.support_link_ttl)
    hub = Hub(settings, live, agents, tokens, metrics, contacts, phone, sip, transfers, monitors, live_calls, alerts,
              wallboards.WallboardFeeds(sessionmaker, contacts), recordings, trunks, chat, desk, support, knowledge,
              webinars.Webinars(live, sessionmaker, phone))
    retention = RetentionJob(live, sessionmaker, settings.recordings_dir, settings.retention_sweep_seconds, contacts.hub_id)
    forms = forms_api.Forms(live, sessionmaker, directory, contacts)
    hub.wrap_up_check = forms.check_wrap_up
    return Context(
        settings, engine, sessionmaker, live, directory, history, agents, tokens, throttle, metrics, hub, contacts, phone,
        retention, trunks, customers, crm, knowledge, forms, queues_api.QueueSettings(live, directory, contacts), desk,
        support, scripts=scripts,
    )


async def _deadline_loop(ctx: Context) -> None:
    while True:
        await asyncio.sleep(0.2)
        try:
            await ctx.agents.fire_deadlines()
        except Exception:  # keep the timer alive through a passing store or Redis failure
            log.exception("deadline loop failed")


def _page(name: str):  # type: ignore[no-untyped-def]
    async def page(_: Request) -> Response:
        return FileResponse(STATIC / name, headers={"Cache-Control": "no-cache"})

    return page


def build_app(settings: Settings) -> Starlette:
    ctx = build_context(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await ctx.live.start()
        ctx.history.start()
        await ctx.contacts.start()
        ctx.crm.start()
        ctx.hub.alerts.start()
        tasks = [
            asyncio.create_task(ctx.hub.reaper(), name="reaper"),
            asyncio.create_task(_deadline_loop(ctx), name="deadlines"),
            asyncio.create_task(ctx.retention.run(), name="recordings-retention"),
        ]
        if ctx.hub.sip is not None:
            tasks.append(asyncio.create_task(ctx.hub.sip.menus.clock(ctx.hub.local_workers), name="menus"))
        log.info("hub ready", extra={"ud_bus": "redis" if settings.redis_url else "memory"})
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await ctx.hub.alerts.close()
            await ctx.contacts.close()
            await ctx.crm.close()
            await ctx.history.close()
            await ctx.live.close()
            await ctx.engine.dispose()

    async def api_error(request: Request, exc: Any) -> Response:
        return api.error_response(exc)

    routes = [
        *api.routes,
        *customers_api.routes,
        *reports.routes,
        *wallboards.routes,
        *recordings_api.routes,
        *support_api.routes,
        *support_send.routes,
        *knowledge_api.routes,
        *forms_api.routes,
        *queues_api.routes,
        *webinars.routes,
        *scripts_api.routes,
        *teams.routes,
        WebSocketRoute("/ws", ctx.hub.endpoint),
        Route("/", _page("index.html")),
        Route("/agent", _page("agent.html")),
        Route("/board", _page("board.html")),
        Route("/reports", _page("reports.html")),
        Route("/forms", _page("forms.html")),
        Route("/wallboards", _page("wallboards.html")),
        Route("/wallboard", _page("wallboard.html")),
        Route("/recordings", _page("recordings.html")),
        Route("/support/{id}", _page("support.html")),
        Route("/webinar", _page("webinar.html")),
        Route("/scripts", _page("scripts.html")),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={api.ApiError: api_error})
    app.state.ctx = ctx
    return app
