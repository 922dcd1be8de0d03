"""The knowledge base over real HTTP and the websocket: REST permissions and bad input, search on the
backend under test, work instructions reaching agents at once and acknowledgements reaching the board,
and content changes reaching running desktops."""

import asyncio
import time
import uuid

import httpx
import pytest

from tests.helpers import bearer, cached_login
from webrtc.audio import ToneSource
from webrtc.bot import BotAgent


def auth(hub, username: str, tenant: str = "demo") -> dict[str, str]:
    return bearer(cached_login(hub.url, username, tenant=tenant))


def word() -> str:
    """A word no other test's article contains (the hub's store is shared by the session)."""
    return "w" + uuid.uuid4().hex[:10]


def test_articles_are_written_by_supervisors_searched_by_agents_and_scoped_to_the_tenant(hub):
    w = word()
    sup, agent, admin = auth(hub, "supervisor"), auth(hub, "agent1"), auth(hub, "admin")
    body = {"title": f"Refund {w}", "body_md": "Refunds within **30 days**. <script>alert(1)</script>",
            "tags": ["billing"], "queues": ["support"], "wrapup_codes": ["resolved"]}
    assert httpx.post(f"{hub.url}/api/kb/articles", json=body, headers=agent).status_code == 403
    r = httpx.post(f"{hub.url}/api/kb/articles", json=body, headers=sup)
    assert r.status_code == 201, r.text
    first = r.json()
    assert "<strong>30 days</strong>" in first["body_html"] and "<script" not in first["body_html"]
    r = httpx.post(f"{hub.url}/api/kb/articles", headers=admin,
                   json={"title": "Shipping", "body_md": f"Lost parcels: refund {w} possible.", "queues": ["sales"]})
    second = r.json()
    acme = httpx.post(f"{hub.url}/api/kb/articles", headers=auth(hub, "supervisor", "acme"),
                      json={"title": f"Acme {w}", "body_md": f"refund {w}"}).json()

    hits = httpx.get(f"{hub.url}/api/kb/search", params={"q": f"refund {w}"}, headers=agent).json()
    # Ranked: the words in the title first; acme's article is never found from demo.
    assert [h["id"] for h in hits] == [first["id"], second["id"]], hits
    assert hits[0]["rank"] >= hits[1]["rank"] and "30 days" in hits[0]["excerpt"]
    hits = httpx.get(f"{hub.url}/api/kb/search", params={"q": w, "queue": "sales"}, headers=agent).json()
    assert [h["id"] for h in hits] == [second["id"]]
    acme_hits = httpx.get(f"{hub.url}/api/kb/search", params={"q": w}, headers=auth(hub, "agent1", "acme")).json()
    assert [h["id"] for h in acme_hits] == [acme["id"]]
    assert httpx.get(f"{hub.url}/api/kb/articles/{acme['id']}", headers=agent).status_code == 404
    assert httpx.put(f"{hub.url}/api/kb/articles/{acme['id']}", json=body, headers=sup).status_code == 404
    got = httpx.get(f"{hub.url}/api/kb/articles/{first['id']}", headers=agent).json()
    assert got["title"] == f"Refund {w}" and got["tags"] == ["billing"]
    sug = httpx.get(f"{hub.url}/api/kb/suggest", params={"wrapup": "resolved"}, headers=agent).json()
    assert first["id"] in [s["id"] for s in sug]

    # Bad input gets a 4xx naming the field.
    cases = [
        (httpx.get, "/api/kb/search", {"params": {"q": "  *() "}}, 400, "q"),
        (httpx.get, "/api/kb/search", {"params": {}}, 400, "q"),
        (httpx.get, "/api/kb/search", {"params": {"q": "x", "limit": "lots"}}, 400, "limit"),
        (httpx.get, "/api/kb/search", {"params": {"q": "x", "queue": "nowhere"}}, 400, "queue"),
        (httpx.get, "/api/kb/suggest", {"params": {}}, 400, "queue or wrapup"),
        (httpx.post, "/api/kb/articles", {"json": {"body_md": "x"}}, 422, "title"),
        (httpx.post, "/api/kb/articles", {"json": {"title": "t", "body_md": "x", "queues": ["nowhere"]}}, 422, "queues"),
        (httpx.post, "/api/kb/articles", {"json": {"title": "t", "body_md": "x", "wrapup_codes": ["nope"]}}, 422,
         "wrapup_codes"),
        (httpx.post, "/api/kb/articles", {"json": {"title": "t", "body_md": "x", "colour": "red"}}, 422, "colour"),
        (httpx.post, "/api/kb/articles", {"content": b"{nope"}, 400, "JSON"),
    ]
    for fn, path, kw, status, field in cases:
        r = fn(f"{hub.url}{path}", headers=sup, **kw)
        assert r.status_code == status and field in r.json()["message"], (path, kw, r.text)

    assert httpx.delete(f"{hub.url}/api/kb/articles/{second['id']}", headers=agent).status_code == 403
    assert httpx.delete(f"{hub.url}/api/kb/articles/{second['id']}", headers=sup).status_code == 200
    hits = httpx.get(f"{hub.url}/api/kb/search", params={"q": w}, headers=agent).json()
    assert [h["id"] for h in hits] == [first["id"]]


def test_snippets_are_rendered_with_whitelisted_placeholders(hub):
    sup, agent1, agent3 = auth(hub, "supervisor"), auth(hub, "agent1"), auth(hub, "agent3")
    short = "s" + uuid.uuid4().hex[:8]
    body = {"name": "Greeting", "shortcut": short, "text": "Hello {{customer.name}}, this is {{agent.name}}."}
    assert httpx.post(f"{hub.url}/api/snippets", json=body, headers=agent1).status_code == 403
    r = httpx.post(f"{hub.url}/api/snippets", json=body, headers=sup)
    assert r.status_code == 201 and r.json()["placeholders"] == ["customer.name", "agent.name"], r.text
    sid = r.json()["id"]
    r = httpx.post(f"{hub.url}/api/snippets", json=body, headers=sup)
    assert r.status_code == 409 and "shortcut" in r.json()["message"]
    r = httpx.post(f"{hub.url}/api/snippets", json={**body, "shortcut": short + "x", "text": "{{user.password}}"},
                   headers=sup)
    assert r.status_code == 422 and "text: unknown placeholder {{user.password}}" in r.json()["message"], r.text
    r = httpx.post(f"{hub.url}/api/snippets", json={**body, "shortcut": "has space"}, headers=sup)
    assert r.status_code == 422 and "shortcut" in r.json()["message"]
    r = httpx.post(f"{hub.url}/api/snippets", json={**body, "shortcut": short + "q", "queue": "nowhere"}, headers=sup)
    assert r.status_code == 422 and "queue" in r.json()["message"]
    sales = httpx.post(f"{hub.url}/api/snippets", headers=sup,
                       json={"name": "Promo", "shortcut": short + "p", "text": "SPRING", "queue": "sales"}).json()

    # Agents see the tenant-wide snippets and their queues' ones; acme's agents see none of demo's.
    mine = {s["shortcut"] for s in httpx.get(f"{hub.url}/api/snippets", headers=agent1).json()}
    assert short in mine and short + "p" not in mine
    assert short + "p" in {s["shortcut"] for s in httpx.get(f"{hub.url}/api/snippets", headers=agent3).json()}
    acme = httpx.get(f"{hub.url}/api/snippets", headers=auth(hub, "agent1", "acme")).json()
    assert short not in {s["shortcut"] for s in acme}
    assert httpx.get(f"{hub.url}/api/snippets/{sid}/render", headers=auth(hub, "agent1", "acme")).status_code == 404

    r = httpx.get(f"{hub.url}/api/snippets/{sid}/render", headers=agent1)
    assert r.json()["text"] == "Hello , this is Agent 1.", r.text
    r = httpx.get(f"{hub.url}/api/snippets/{sid}/render", params={"contact_id": "nope"}, headers=agent1)
    assert r.status_code == 404 and "contact_id" in r.json()["message"]
    assert httpx.delete(f"{hub.url}/api/snippets/{sales['id']}", headers=sup).status_code == 200
    assert httpx.get(f"{hub.url}/api/snippets/{sales['id']}/render", headers=agent3).status_code == 404


def bot(hub, username: str) -> BotAgent:
    return BotAgent(hub.url, "demo", username, "demo", ToneSource(500.0))


async def test_an_instruction_reaches_two_agents_at_once_and_the_board_sees_the_acknowledgements(hub):
    agent1, agent2, agent3, board = bot(hub, "agent1"), bot(hub, "agent2"), bot(hub, "agent3"), bot(hub, "supervisor")
    sup = auth(hub, "supervisor")
    text = f"outage in region north: use snippet outage ({uuid.uuid4().hex[:6]})"
    try:
        await asyncio.gather(*(b.login() for b in (agent1, agent2, agent3, board)))
        ids = {b.username: b.snapshot["agents"][0]["id"] for b in (agent1, agent2)}
        async with httpx.AsyncClient() as http:
            sent = time.monotonic()
            r = await http.post(f"{hub.url}/api/instructions", json={"text": text, "queues": ["support"]}, headers=sup)
            assert r.status_code == 201, r.text
            iid = r.json()["id"]

            def is_it(m):
                return m["type"] == "instruction" and m["instruction"]["id"] == iid

            got = await asyncio.gather(agent1.expect(is_it, 5), agent2.expect(is_it, 5), board.expect(is_it, 5))
            assert time.monotonic() - sent < 5
            assert got[0]["instruction"]["text"] == text and got[0]["instruction"]["published_by"] == "Sam Supervisor"
            assert "agents" not in got[0]["instruction"]  # who else was told is for the boards
            assert set(ids.values()) <= set(got[2]["instruction"]["agents"])

            # A fresh connection of the agent lists it until acknowledged.
            again = bot(hub, "agent1")
            await again.login()
            await again.close()
            assert iid in [i["id"] for i in again.snapshot.get("instructions", [])]

            r = await http.post(f"{hub.url}/api/instructions/{iid}/ack", headers=auth(hub, "agent1"))
            assert r.status_code == 200 and r.json()["agent_id"] == ids["agent1"], r.text
            ack = await board.expect(lambda m: m["type"] == "instruction-ack" and m["instruction_id"] == iid, 5)
            assert ack["agent_id"] == ids["agent1"]
            await agent1.expect(lambda m: m["type"] == "instruction-ack" and m["instruction_id"] == iid, 5)
            # A repeated acknowledgement keeps the first time.
            r2 = await http.post(f"{hub.url}/api/instructions/{iid}/ack", headers=auth(hub, "agent1"))
            assert r2.json()["at"] == r.json()["at"]
            await http.post(f"{hub.url}/api/instructions/{iid}/ack", headers=auth(hub, "agent2"))
            ack = await board.expect(lambda m: m["type"] == "instruction-ack" and m["instruction_id"] == iid, 5)
            assert ack["agent_id"] == ids["agent2"]

            listed = {i["id"]: i for i in (await http.get(f"{hub.url}/api/instructions", headers=sup)).json()}
            acked = {a["agent_id"] for a in listed[iid]["acks"]}
            assert acked == set(ids.values()) and set(listed[iid]["agents"]) - acked  # agent3..5 not yet
            mine = (await http.get(f"{hub.url}/api/instructions", headers=auth(hub, "agent1"))).json()
            assert next(i for i in mine if i["id"] == iid)["acked_at"] == r.json()["at"]
            again = bot(hub, "agent1")
            await again.login()
            await again.close()
            assert iid not in [i["id"] for i in again.snapshot.get("instructions", [])]
            # The board's snapshot carries the instruction with its acknowledgements.
            fresh = bot(hub, "supervisor")
            await fresh.login()
            await fresh.close()
            snap = next(i for i in fresh.snapshot["instructions"] if i["id"] == iid)
            assert {a["agent_id"] for a in snap["acks"]} == acked

            # Only the addressed agents acknowledge; agents do not publish; bad input names the field.
            r = await http.post(f"{hub.url}/api/instructions", json={"text": "sales only", "queues": ["sales"]}, headers=sup)
            sales_id = r.json()["id"]
            r = await http.post(f"{hub.url}/api/instructions/{sales_id}/ack", headers=auth(hub, "agent1"))
            assert r.status_code == 404, r.text
            await agent3.expect(lambda m: m["type"] == "instruction" and m["instruction"]["id"] == sales_id, 5)
            r = await http.post(f"{hub.url}/api/instructions/{sales_id}/ack", headers=sup)
            assert r.status_code == 403
            r = await http.post(f"{hub.url}/api/instructions", json={"text": "x", "queues": ["support"]},
                                headers=auth(hub, "agent1"))
            assert r.status_code == 403
            for body, field in (({"text": "x", "queues": []}, "queues"), ({"text": "", "queues": ["support"]}, "text"),
                                ({"text": "x", "queues": ["nowhere"]}, "queues"),
                                ({"text": "x", "queues": ["support"], "expires_minutes": 0}, "expires_minutes")):
                r = await http.post(f"{hub.url}/api/instructions", json=body, headers=sup)
                assert r.status_code == 422 and field in r.json()["message"], (body, r.text)
            r = await http.post(f"{hub.url}/api/instructions/{iid}/ack", headers=auth(hub, "agent1", "acme"))
            assert r.status_code == 404

            # A snippet for sales changed by a supervisor reaches sales' agents and the board, not agent1.
            r = await http.post(f"{hub.url}/api/snippets", headers=sup, json={
                "name": "Outage", "shortcut": "o" + uuid.uuid4().hex[:8], "text": "We know about the outage.",
                "queue": "sales"})
            sid = r.json()["id"]

            def changed(m):
                return m["type"] == "content-changed" and m["kind"] == "snippet" and m["id"] == sid

            await asyncio.gather(agent3.expect(changed, 5), board.expect(changed, 5))
            assert (await agent1.request({"type": "set-state", "state": "logged-out"}))["type"] in ("ack", "error")
            assert not any(changed(m) for m in agent1.events)
            r = await http.put(f"{hub.url}/api/kb/articles/999999999", headers=sup, json={"title": "x", "body_md": ""})
            assert r.status_code == 404
    finally:
        for b in (agent1, agent2, agent3, board):
            await b.close()


@pytest.mark.redis_only
async def test_an_instruction_published_on_one_hub_reaches_an_agent_on_another(hub, start_hub):
    other = start_hub()
    agent = BotAgent(other.url, "demo", "agent5", "demo", ToneSource(500.0))
    board = bot(hub, "supervisor")
    try:
        await asyncio.gather(agent.login(), board.login())
        async with httpx.AsyncClient() as http:
            r = await http.post(f"{hub.url}/api/instructions", headers=auth(hub, "supervisor"),
                                json={"text": "two hubs", "queues": ["sales"]})
            iid = r.json()["id"]
            await agent.expect(lambda m: m["type"] == "instruction" and m["instruction"]["id"] == iid, 5)
            r = await http.post(f"{other.url}/api/instructions/{iid}/ack", headers=auth(other, "agent5"))
            assert r.status_code == 200, r.text
        ack = await board.expect(lambda m: m["type"] == "instruction-ack" and m["instruction_id"] == iid, 5)
        assert ack["agent_id"] == agent.snapshot["agents"][0]["id"]
    finally:
        await agent.close()
        await board.close()
