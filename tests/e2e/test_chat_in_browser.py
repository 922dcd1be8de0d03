"""An agent raises a hand and writes from the desktop; the supervisor's board shows the hand, replies,
and broadcasts to a queue — all in Chromium."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.test_desktop_and_board import log_in


def test_a_raised_hand_is_answered_from_the_board_and_a_broadcast_reaches_the_agent(hub, browser):
    agent_ctx, sup_ctx = browser.new_context(), browser.new_context()
    errors: list[str] = []
    try:
        agent, sup = agent_ctx.new_page(), sup_ctx.new_page()
        for p in (agent, sup):
            p.on("pageerror", lambda e: errors.append(str(e)))
        log_in(agent, hub, "agent2")
        expect(agent.locator("#conn")).to_have_text("Connected")
        log_in(sup, hub, "supervisor")
        expect(sup.locator("#conn")).to_have_text("Live")

        agent.fill("#chat-text", "caller wants a manager")
        agent.click("#raise-hand")
        expect(agent.locator("#raise-hand")).to_have_attribute("aria-pressed", "true")
        hand = sup.locator("#hands li.hand")
        expect(hand.locator(".note")).to_have_text("caller wants a manager", timeout=10_000)
        expect(hand.locator(".who")).to_contain_text("Agent 2")

        # The supervisor replies to the hand: the agent reads it and the hand goes down on both pages.
        hand.locator("button.reply").click()
        sup.fill("#chat-text", "coming to your desk")
        sup.click("#chat-form button[type=submit]")
        expect(agent.locator("#chat-log li.chat-line .text").last).to_have_text("coming to your desk", timeout=10_000)
        expect(sup.locator("#hands li.hand")).to_have_count(0)
        expect(agent.locator("#raise-hand")).to_have_attribute("aria-pressed", "false")

        # The agent writes to the supervisors; the board's log shows it.
        agent.fill("#chat-text", "thanks")
        agent.click("#chat-form button[type=submit]")
        expect(sup.locator("#chat-log li.chat-line .text").last).to_have_text("thanks", timeout=10_000)

        # A broadcast to support reaches the agent (all demo agents are in support).
        sup.select_option("#chat-to", "queue:support")
        sup.fill("#chat-text", "system outage in region north")
        sup.click("#chat-form button[type=submit]")
        expect(agent.locator("#chat-log li.chat-line .text").last).to_have_text("system outage in region north",
                                                                                timeout=10_000)
        assert errors == []
    finally:
        agent_ctx.close()
        sup_ctx.close()
