"""Chat between agents and supervisors, broadcasts to a queue, and raised hands, over the hub's websocket."""

from webrtc.audio import ToneSource
from webrtc.bot import BotAgent


def bot(hub, username: str, own: bool = False) -> BotAgent:
    return BotAgent(hub.url, "demo", username, "demo", ToneSource(500.0), own_stream=own)


def got(m: dict, text: str) -> bool:
    return m["type"] == "chat" and m["message"]["text"] == text


async def test_agents_and_supervisors_chat_broadcast_and_answer_raised_hands(hub):
    agent1, agent3 = bot(hub, "agent1"), bot(hub, "agent3")
    sup, board = bot(hub, "supervisor", own=True), bot(hub, "supervisor")
    try:
        for b in (agent1, agent3, sup, board):
            await b.login()
        # The agent asks every supervisor for help; the supervisor's own stream gets it, the board does not.
        ack = await agent1.request({"type": "chat-send", "to_supervisors": True, "text": "customer asks for a refund"})
        assert ack["type"] == "ack", ack
        m = await sup.expect(lambda m: got(m, "customer asks for a refund"), 5)
        assert m["message"]["from_name"] == "Agent 1" and m["message"]["to_supervisors"] is True
        agent1_id = m["message"]["from_id"]
        await agent1.expect(lambda m: got(m, "customer asks for a refund"), 5)  # the sender's copy

        # The agent raises a hand; the board sees it; the supervisor's reply answers (lowers) it.
        assert (await agent1.request({"type": "hand-raise", "on": True, "note": "refund over 500"}))["type"] == "ack"
        up = await board.expect(lambda m: m["type"] == "hand" and m["raised"], 5)
        assert up["hand"]["agent_id"] == agent1_id and up["hand"]["note"] == "refund over 500"
        ack = await sup.request({"type": "chat-send", "to": agent1_id, "text": "approved, go ahead"})
        assert ack["type"] == "ack", ack
        reply = await agent1.expect(lambda m: got(m, "approved, go ahead"), 5)
        assert reply["message"]["to"] == agent1_id
        down = await board.expect(lambda m: m["type"] == "hand" and not m["raised"], 5)
        assert down["lowered_by"] == "supervisor"
        await agent1.expect(lambda m: m["type"] == "hand" and not m["raised"], 5)

        # A hand lowered by a supervisor explicitly; lowering a hand that is down is refused.
        assert (await agent1.request({"type": "hand-raise", "on": True}))["type"] == "ack"
        await board.expect(lambda m: m["type"] == "hand" and m["raised"], 5)
        assert (await board.request({"type": "hand-raise", "on": False, "agent_id": agent1_id}))["type"] == "ack"
        await board.expect(lambda m: m["type"] == "hand" and not m["raised"], 5)
        err = await board.request({"type": "hand-raise", "on": False, "agent_id": agent1_id})
        assert err["type"] == "error" and err["code"] == "not-found", err

        # A broadcast to sales reaches agent3 (in sales) and not agent1 (support only).
        ack = await sup.request({"type": "chat-send", "queue": "sales", "text": "promo code SPRING ends today"})
        assert ack["type"] == "ack", ack
        await agent3.expect(lambda m: got(m, "promo code SPRING ends today"), 5)
        assert (await agent1.request({"type": "hand-raise", "on": False}))["type"] == "ack"  # a round trip after it
        assert not any(got(m, "promo code SPRING ends today") for m in agent1.events)

        # What agents may not do, and bad messages.
        err = await agent1.request({"type": "chat-send", "to": agent1_id + 2, "text": "psst"})
        assert err["type"] == "error" and err["code"] in ("forbidden", "not-found"), err
        err = await agent1.request({"type": "chat-send", "queue": "support", "text": "hello all"})
        assert err["type"] == "error" and err["code"] == "forbidden", err
        err = await agent1.request({"type": "hand-raise", "on": False, "agent_id": agent1_id + 2})
        assert err["type"] == "error" and err["code"] == "forbidden", err
        err = await sup.request({"type": "chat-send", "to": 999999, "text": "anyone?"})
        assert err["type"] == "error" and err["code"] == "not-found", err
        err = await sup.request({"type": "chat-send", "to": agent1_id, "queue": "sales", "text": "both"})
        assert err["type"] == "error" and err["code"] == "bad-frame", err
        err = await sup.request({"type": "chat-send", "to": agent1_id, "text": ""})
        assert err["type"] == "error" and err["code"] == "bad-frame", err

        # A new connection's snapshot carries the conversation.
        again = bot(hub, "agent1")
        await again.login()
        await again.close()
        texts = [m["text"] for m in again.snapshot.get("chat", [])]
        assert "customer asks for a refund" in texts and "approved, go ahead" in texts, texts
        assert "promo code SPRING ends today" not in texts, texts
        # The board's snapshot lists raised hands (none now).
        assert board.snapshot.get("hands", []) == []
    finally:
        for b in (agent1, agent3, sup, board):
            await b.close()
