"""The screen pop in the agent desktop: a known caller's record, a choice, a new customer; the
contact lands in the customer's history with its wrap-up code and notes."""

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import HubProcess, drop_backend, prepared_backend
from tests.e2e.test_desktop_and_board import log_in
from tests.helpers import bearer, cached_login, force


@pytest.fixture(scope="module")
def crm_hub(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("crm-e2e")
    b = prepared_backend(tmp)
    h = HubProcess(b, tmp / "hub.log").start()
    yield h
    h.stop()
    drop_backend(b)


def auth(h, user="agent2"):
    return bearer(cached_login(h.url, user))


def new_customer(h, **body):
    r = httpx.post(f"{h.url}/api/customers", json=body, headers=auth(h))
    assert r.status_code == 201, r.text
    return r.json()


def contact(h, caller):
    r = httpx.post(f"{h.url}/api/contacts", json={"queue": "support", "caller": caller}, headers=auth(h, "admin"))
    assert r.status_code == 201, r.text
    return r.json()["contact_id"]


def ready_agent2(h, browser):
    for i in range(1, 6):
        force(h, f"agent{i}", "logged-out")
    ctx = browser.new_context()
    page = ctx.new_page()
    log_in(page, h, "agent2")
    expect(page.locator("#conn")).to_have_text("Connected")
    page.click("#go-available")
    expect(page.locator("#state-label")).to_have_text("Available")
    return ctx, page


def test_a_known_caller_pops_the_record_which_then_shows_the_wrapped_up_contact(crm_hub, browser):
    h = crm_hub
    c = new_customer(h, first_name="Erika", last_name="Muster", company="Muster GmbH",
                     numbers=[{"number": "030 5550100", "label": "work"}], fields={"Contract": "K-77"})
    ctx, page = ready_agent2(h, browser)
    try:
        cid = contact(h, "+49 30 5550100")
        box = page.locator("#customer")
        expect(page.locator("#contact")).to_have_attribute("data-status", "ringing")
        expect(box).to_have_attribute("data-customer-id", str(c["id"]))
        expect(page.locator("#customer-name")).to_have_text("Erika Muster")
        expect(page.locator("#customer-fields dd[data-field=Numbers]")).to_have_text("+49305550100 (work)")
        expect(page.locator("#customer-fields dd[data-field=Contract]")).to_have_text("K-77")
        expect(page.locator("#customer-contacts li")).to_have_text(["No contacts yet"])
        page.click("#accept")
        expect(page.locator("#contact")).to_have_attribute("data-status", "connected")
        # The agent corrects the record during the call: the change is recorded with who did it.
        page.fill("#customer-edit [name=company]", "Muster AG")
        page.click("#customer-edit button[type=submit]")
        expect(page.locator("#customer-fields dd[data-field=Company]")).to_have_text("Muster AG")
        page.click("#end-contact")
        page.select_option("#wrap-up-form select", "escalated")
        page.fill("#wrap-up-form textarea", "wants a callback on Monday")
        page.click("#wrap-up-form button[type=submit]")
        expect(page.locator("#contact")).to_be_hidden()
        hist = httpx.get(f"{h.url}/api/customers/{c['id']}/history", headers=auth(h)).json()
        assert [(x["contact_id"], x["wrapup_code"], x["notes"]) for x in hist] == [
            (cid, "escalated", "wants a callback on Monday")]
        changes = httpx.get(f"{h.url}/api/customers/{c['id']}/changes", headers=auth(h)).json()
        assert (changes[0]["field"], changes[0]["old"], changes[0]["new"], changes[0]["by"]) == (
            "company", "Muster GmbH", "Muster AG", "agent2")
        # The next call from Erika pops the record with that contact in it.
        expect(page.locator("#state-label")).to_have_text("Available")
        cid2 = contact(h, "030 5550100")
        last = page.locator(f"#customer-contacts li[data-contact-id='{cid}']")
        expect(last).to_contain_text("escalated")
        expect(last).to_contain_text("wants a callback on Monday")
        page.click("#reject")
        httpx.post(f"{h.url}/api/contacts/{cid2}/abandon", headers=auth(h, "admin"))
    finally:
        ctx.close()


def test_unknown_caller_gets_a_new_customer_form_and_several_matches_a_choice(crm_hub, browser):
    h = crm_hub
    ctx, page = ready_agent2(h, browser)
    try:
        cid = contact(h, "+49 40 5550199")
        expect(page.locator("#customer")).to_have_attribute("data-matches", "0")
        form = page.locator("#customer-new")
        expect(form).to_be_visible()
        expect(form.locator("[name=number]")).to_have_value("+49 40 5550199")
        form.locator("[name=first_name]").fill("Neu")
        form.locator("[name=last_name]").fill("Kunde")
        form.locator("button[type=submit]").click()
        expect(page.locator("#customer-name")).to_have_text("Neu Kunde")
        expect(page.locator("#customer-fields dd[data-field=Numbers]")).to_have_text("+49405550199")
        new_id = page.locator("#customer").get_attribute("data-customer-id")
        page.click("#reject")
        httpx.post(f"{h.url}/api/contacts/{cid}/abandon", headers=auth(h, "admin"))
        hist = httpx.get(f"{h.url}/api/customers/{new_id}/history", headers=auth(h)).json()
        assert [x["contact_id"] for x in hist] == [cid]

        # A second customer with the same number: the next call offers a choice.
        other = new_customer(h, first_name="Zweite", last_name="Kundin", numbers=[{"number": "040 5550199"}])
        expect(page.locator("#state-label")).to_have_text("Available")
        cid = contact(h, "04055 50199")
        expect(page.locator("#customer")).to_have_attribute("data-matches", "2")
        choices = page.locator("#customer-choices button")
        expect(choices).to_have_count(2)
        page.click(f"#customer-choices button[data-customer-id='{other['id']}']")
        expect(page.locator("#customer-name")).to_have_text("Zweite Kundin")
        expect(page.locator("#customer-choose")).to_be_hidden()
        page.click("#reject")
        httpx.post(f"{h.url}/api/contacts/{cid}/abandon", headers=auth(h, "admin"))
        hist = httpx.get(f"{h.url}/api/customers/{other['id']}/history", headers=auth(h)).json()
        assert [x["contact_id"] for x in hist] == [cid]
    finally:
        ctx.close()
