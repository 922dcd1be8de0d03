"""An agent and a supervisor in two browser contexts, against a running hub."""

from playwright.sync_api import Page, expect

from tests.helpers import force


def log_in(page: Page, hub, username: str) -> None:
    page.goto(hub.url + "/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "demo")
    page.click("button[type=submit]")


def board_row(page: Page, username: str):
    return page.locator(f"#agents tr[data-username='{username}']")


def test_agent_pauses_for_lunch_and_the_board_follows_and_the_supervisor_forces_back(hub, browser):
    force(hub, "agent1", "logged-out")
    agent_ctx = browser.new_context()
    sup_ctx = browser.new_context()
    try:
        agent = agent_ctx.new_page()
        log_in(agent, hub, "agent1")
        expect(agent).to_have_url(hub.url + "/agent")
        expect(agent.locator("#conn")).to_have_text("Connected")
        expect(agent.locator("#state-label")).to_have_text("Logged out")
        expect(agent.locator("#queues li")).to_have_text(["Support"])  # the queue's label

        sup = sup_ctx.new_page()
        log_in(sup, hub, "supervisor")
        expect(sup).to_have_url(hub.url + "/board")
        expect(sup.locator("#conn")).to_have_text("Live")
        row = board_row(sup, "agent1")
        expect(row.locator("td.state")).to_have_text("Logged out")

        agent.click("#go-available")
        expect(agent.locator("#state-label")).to_have_text("Available")
        expect(row.locator("td.state")).to_have_text("Available")

        agent.click("#pause-reasons button[data-reason=lunch]")
        expect(agent.locator("#state-label")).to_have_text("Paused")
        expect(agent.locator("#state-reason")).to_have_text("Lunch")
        expect(row.locator("td.state")).to_have_text("Paused", timeout=2000)
        expect(row.locator("td.reason")).to_have_text("Lunch")
        # The time in state ticks on the board.
        expect(row.locator("td.timer")).to_have_text("00:01", timeout=4000)

        row.locator("select.force").select_option("available")
        expect(row.locator("td.state")).to_have_text("Available")
        expect(row.locator("td.changed-by")).to_have_text("supervisor")
        expect(agent.locator("#state-label")).to_have_text("Available", timeout=2000)
        expect(agent.locator("#changed-by")).to_have_text("set by supervisor")
    finally:
        agent_ctx.close()
        sup_ctx.close()


def test_board_filters_by_queue_and_state(hub, browser):
    force(hub, "agent2", "logged-out")
    force(hub, "agent2", "paused", "break")
    ctx = browser.new_context()
    try:
        sup = ctx.new_page()
        log_in(sup, hub, "supervisor")
        expect(board_row(sup, "agent1")).to_have_count(1)
        sup.select_option("#filter-queue", "sales")
        # agent1 and agent2 serve support only; agent3..5 are in sales too.
        expect(board_row(sup, "agent1")).to_have_count(0)
        expect(board_row(sup, "agent3")).to_have_count(1)
        sup.select_option("#filter-queue", "")
        sup.select_option("#filter-state", "paused")
        expect(board_row(sup, "agent2")).to_have_count(1)
        for row in sup.locator("#agents tbody tr").all():
            expect(row.locator("td.state")).to_have_text("Paused")
        # A change while filtered updates the view live.
        force(hub, "agent2", "available")
        expect(board_row(sup, "agent2")).to_have_count(0)
    finally:
        ctx.close()


def test_wrong_password_shows_a_clear_message(hub, browser):
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        page.goto(hub.url + "/")
        page.fill("input[name=username]", "agent3")
        page.fill("input[name=password]", "not-the-password")
        page.click("button[type=submit]")
        expect(page.locator("#toast")).to_have_text("unknown tenant, user or password")
        expect(page).to_have_url(hub.url + "/")
    finally:
        ctx.close()


def test_agent_desktop_shows_reconnecting_and_recovers(backend, start_hub, browser, tmp_path):
    h = start_hub()
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        log_in(page, h, "agent4")
        expect(page.locator("#conn")).to_have_text("Connected")
        port = h.port
        h.kill()
        expect(page.locator("#conn")).to_have_text("Reconnecting…")
        expect(page.locator("#offline-banner")).to_be_visible()
        again = start_hub(UNIDESK_PORT=str(port))
        expect(page.locator("#conn")).to_have_text("Connected", timeout=15000)
        expect(page.locator("#offline-banner")).to_be_hidden()
        page.click("#pause-reasons button[data-reason=break]")
        expect(page.locator("#state-reason")).to_have_text("Break")
        assert again.port == port
    finally:
        ctx.close()
