"""Teams: named groups of users of a tenant (a training cohort, a shift), kept small on purpose.

A team is an audience for a webinar (realtime/webinars.py) next to the agents of queues. Queues
group agents by the calls they take and skills by what they know; neither says "these people
train together", hence teams.

REST (admins change them; supervisors and trainers read them):
GET /api/teams, POST /api/teams {name, members: [usernames]}, PUT /api/teams/{id} (name and/or
the whole member list), DELETE /api/teams/{id}.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from realtime.api import ApiError, principal, read_body
from store.models import QueueMembership, Team, TeamMember, User

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Members = Annotated[list[Name], msgspec.Meta(max_length=500)]


class TeamBody(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | None = None
    members: Members | None = None


async def _user_ids(s: AsyncSession, tenant_id: int, usernames: list[str]) -> list[int]:
    wanted = set(usernames)
    rows = (await s.execute(select(User.id, User.username).where(User.tenant_id == tenant_id,
                                                                  User.username.in_(wanted)))).all()
    missing = wanted - {r.username for r in rows}
    if missing:
        raise ApiError(422, "bad-request", f"no user {', '.join(sorted(missing))}")
    return [r.id for r in rows]


async def _view(s: AsyncSession, team: Team) -> dict[str, Any]:
    names = (await s.execute(select(User.username).join(TeamMember, TeamMember.user_id == User.id)
                             .where(TeamMember.team_id == team.id).order_by(User.username))).scalars().all()
    return {"id": team.id, "name": team.name, "members": list(names)}


async def _team(s: AsyncSession, tenant_id: int, team_id: str) -> Team:
    team = await s.get(Team, int(team_id)) if team_id.isdigit() else None
    if team is None or team.tenant_id != tenant_id:
        raise ApiError(404, "not-found", f"no team {team_id}")
    return team


async def _set_members(s: AsyncSession, team: Team, user_ids: list[int]) -> None:
    await s.execute(delete(TeamMember).where(TeamMember.team_id == team.id))
    s.add_all(TeamMember(tenant_id=team.tenant_id, team_id=team.id, user_id=u) for u in user_ids)


async def audience_users(s: AsyncSession, tenant_id: int, queue_ids: list[int], team_ids: list[int]) -> set[int]:
    """The users in any of these queues or teams (of this tenant)."""
    users: set[int] = set()
    if queue_ids:
        users |= set((await s.execute(select(QueueMembership.user_id).where(
            QueueMembership.tenant_id == tenant_id, QueueMembership.queue_id.in_(queue_ids)))).scalars())
    if team_ids:
        users |= set((await s.execute(select(TeamMember.user_id).where(
            TeamMember.tenant_id == tenant_id, TeamMember.team_id.in_(team_ids)))).scalars())
    return users


def _sessionmaker(request: Request) -> Any:
    return request.app.state.ctx.sessionmaker


async def list_teams(request: Request) -> Response:
    p = principal(request, "admin", "supervisor", "trainer")
    async with _sessionmaker(request)() as s:
        teams = (await s.execute(select(Team).where(Team.tenant_id == p.tenant_id).order_by(Team.name))).scalars().all()
        return JSONResponse({"teams": [await _view(s, t) for t in teams]})


async def create_team(request: Request) -> Response:
    p = principal(request, "admin")
    body: TeamBody = await read_body(request, TeamBody)
    if body.name is None:
        raise ApiError(422, "bad-request", "a team needs a name")
    try:
        async with _sessionmaker(request)() as s, s.begin():
            ids = await _user_ids(s, p.tenant_id, body.members or [])
            team = Team(tenant_id=p.tenant_id, name=body.name)
            s.add(team)
            await s.flush()
            await _set_members(s, team, ids)
    except IntegrityError:
        raise ApiError(409, "conflict", f"a team {body.name!r} exists already") from None
    async with _sessionmaker(request)() as s:
        return JSONResponse(await _view(s, await _team(s, p.tenant_id, str(team.id))), 201)


async def change_team(request: Request) -> Response:
    p = principal(request, "admin")
    body: TeamBody = await read_body(request, TeamBody)
    try:
        async with _sessionmaker(request)() as s, s.begin():
            team = await _team(s, p.tenant_id, request.path_params["team"])
            if body.name is not None:
                team.name = body.name
            if body.members is not None:
                await _set_members(s, team, await _user_ids(s, p.tenant_id, body.members))
    except IntegrityError:
        raise ApiError(409, "conflict", f"a team {body.name!r} exists already") from None
    async with _sessionmaker(request)() as s:
        return JSONResponse(await _view(s, await _team(s, p.tenant_id, request.path_params["team"])))


async def delete_team(request: Request) -> Response:
    p = principal(request, "admin")
    async with _sessionmaker(request)() as s, s.begin():
        await s.delete(await _team(s, p.tenant_id, request.path_params["team"]))
    return Response(status_code=204)


routes = [
    Route("/api/teams", list_teams),
    Route("/api/teams", create_team, methods=["POST"]),
    Route("/api/teams/{team}", change_team, methods=["PUT"]),
    Route("/api/teams/{team}", delete_team, methods=["DELETE"]),
]
