"""REST routes of call recordings: list, metadata, and the audio (docs/recordings.md).

Supervisors and admins of the tenant may list recordings and listen to them; downloading (the
same audio as an attachment) needs a role in the tenant's `recordings.download_roles` (default:
admins). Agents get 403. A recording of another tenant is not found (404), like one that never
was: queries are scoped to the caller's tenant, so its existence is never revealed.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from realtime.api import ApiError, principal
from realtime.auth import Principal, TokenError
from realtime.recordings import download_roles, file_of
from store.models import Recording
from store.repos import TenantRepo, tenant_by_id
from webrtc.recorder import CONTENT_TYPE

LISTENERS = ("supervisor", "admin")
_ID = re.compile(r"[0-9a-f]{32}")
# Lifetime of the token in a recording's audio URL (an <audio> element cannot send a bearer header).
AUDIO_TOKEN_TTL = 3600


def _audio_url(request: Request, p: Principal, rid: str) -> str:
    """The audio's URL with a token that opens this recording only, for an hour, for this user's roles."""
    token = request.app.state.ctx.tokens.issue(p, f"recording:{rid}", AUDIO_TOKEN_TTL)
    return f"/api/recordings/{rid}/audio?token={token}"


def _listener(request: Request, rid: str) -> Principal:
    """Who asks for the audio: a bearer access token, or the recording's own token in the URL."""
    token = request.query_params.get("token")
    if token is None:
        return principal(request, *LISTENERS)
    try:
        p = request.app.state.ctx.tokens.verify(token, f"recording:{rid}")
    except TokenError as exc:
        raise ApiError(401, "unauthorized", str(exc)) from None
    if not p.has_any(*LISTENERS):
        raise ApiError(403, "forbidden", f"needs the role {' or '.join(LISTENERS)}")
    return p


def _recording_id(request: Request) -> str:
    rid = request.path_params["recording_id"]
    if not _ID.fullmatch(rid):
        raise ApiError(400, "bad-request", f"bad recording id {rid[:80]!r}: expected 32 hex digits")
    return rid


async def _may_download(request: Request, tenant_id: int, roles: frozenset[str]) -> bool:
    async with request.app.state.ctx.sessionmaker() as s:
        tenant = await tenant_by_id(s, tenant_id)
    return bool(roles & download_roles(tenant.settings if tenant else None))


def _view(request: Request, p: Principal, row: Recording, caller: str | None, agents: dict[int, str],
          can_download: bool) -> dict[str, Any]:
    available = row.deleted_at is None and row.path is not None
    return {
        "id": row.id, "contact_id": row.contact_id, "queue": row.queue, "caller": caller,
        "agent_id": row.agent_id, "agent": agents.get(row.agent_id) if row.agent_id is not None else None,
        "started_at": row.started_at, "ended_at": row.ended_at, "seconds": row.seconds, "bytes": row.bytes,
        "deleted_at": row.deleted_at, "error": row.error, "available": available,
        "audio_url": _audio_url(request, p, row.id) if available else None,
        "download": can_download and available,
    }


async def _agents(request: Request, tenant_id: int) -> dict[int, str]:
    d = await request.app.state.ctx.directory.get(tenant_id)
    return {uid: p.username for uid, p in d.users.items()} if d else {}


async def list_recordings(request: Request) -> Response:
    p = principal(request, *LISTENERS)
    contact_id = request.query_params.get("contact_id")
    if contact_id is not None and not 1 <= len(contact_id) <= 64:
        raise ApiError(400, "bad-request", "contact_id is 1 to 64 characters")
    raw_limit = request.query_params.get("limit", "100")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 500:
        raise ApiError(400, "bad-request", f"limit={raw_limit[:20]!r}: expected a whole number 1..500")
    async with request.app.state.ctx.sessionmaker() as s:
        repo = TenantRepo(s, p.tenant_id)
        rows = await repo.recordings(contact_id, int(raw_limit))
        callers = await repo.callers(r.contact_id for r in rows)
    agents = await _agents(request, p.tenant_id)
    can = await _may_download(request, p.tenant_id, p.roles)
    return JSONResponse([_view(request, p, r, callers.get(r.contact_id), agents, can) for r in rows])


async def _row(request: Request, tenant_id: int, rid: str) -> Recording:
    async with request.app.state.ctx.sessionmaker() as s:
        row = await TenantRepo(s, tenant_id).recording(rid)
    if row is None:
        raise ApiError(404, "not-found", f"no recording {rid}")
    return row


async def recording(request: Request) -> Response:
    p = principal(request, *LISTENERS)
    row = await _row(request, p.tenant_id, _recording_id(request))
    async with request.app.state.ctx.sessionmaker() as s:
        callers = await TenantRepo(s, p.tenant_id).callers([row.contact_id])
    agents = await _agents(request, p.tenant_id)
    return JSONResponse(_view(request, p, row, callers.get(row.contact_id), agents, await _may_download(request, p.tenant_id, p.roles)))


async def audio(request: Request) -> Response:
    """The file, with HTTP Range support (a player seeks); `download=1`: as an attachment."""
    rid = _recording_id(request)
    p = _listener(request, rid)
    download = request.query_params.get("download", "0")
    if download not in ("0", "1"):
        raise ApiError(400, "bad-request", f"download={download[:20]!r}: expected 0 or 1")
    row = await _row(request, p.tenant_id, rid)
    if download == "1" and not await _may_download(request, p.tenant_id, p.roles):
        raise ApiError(403, "forbidden", "downloading recordings needs a role in the tenant's recordings.download_roles")
    if row.deleted_at is not None:
        raise ApiError(410, "gone", f"recording {row.id} was deleted after the tenant's retention")
    path = file_of(request.app.state.ctx.settings.recordings_dir, row.path)
    if path is None:
        raise ApiError(409, "not-ready", f"recording {row.id} is not finished yet" + (f" ({row.error})" if row.error else ""))
    if not path.is_file():
        raise ApiError(404, "not-found", f"the file of recording {row.id} is missing")
    return FileResponse(
        path, media_type=CONTENT_TYPE, filename=f"recording-{row.contact_id}-{row.id}.ogg" if download == "1" else None,
        content_disposition_type="attachment", headers={"Cache-Control": "private, no-store"},
    )


routes = [
    Route("/api/recordings", list_recordings),
    Route("/api/recordings/{recording_id}", recording),
    Route("/api/recordings/{recording_id}/audio", audio),
]
