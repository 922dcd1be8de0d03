"""CRM connector helpers without a network: the sandbox, masking, response mapping, normalisation."""

import pytest

from realtime.crm import (
    ConnectorConfig, ConnectorError, Header, Lookup, Webhook, check_template, keep_secrets, map_response, masked,
    render, validate,
)
from store.customers import BadNumber, normalise


@pytest.mark.parametrize("source", [
    "{{ ''.__class__.__mro__ }}",
    "{{ contact['__class__'] }}",
    "{{ (contact|attr('__class__')).__name__ }}",
    "{{ contact|attr('__class__') }}",
    "{% for c in ''.__class__.__mro__[1].__subclasses__() %}{{ c }}{% endfor %}",
])
def test_templates_reaching_python_internals_are_refused_at_save_time(source):
    with pytest.raises(ConnectorError, match="refused by the sandbox"):
        check_template("lookup.body", source)


def test_a_template_is_refused_at_render_time_too():
    # Saved before the check existed, or built from values: the sandbox still refuses while rendering.
    with pytest.raises(ConnectorError, match="lookup.url: refused by the sandbox"):
        render("lookup.url", "{{ contact|attr(name) }}", {"contact": {}, "name": "__class__"})


def test_templates_render_values_and_name_the_broken_one():
    out = render("body", '{"phone": {{ caller|tojson }}, "q": "{{ contact.queue }}"}',
                 {"caller": "+4930123", "contact": {"queue": "support"}})
    assert out == '{"phone": "+4930123", "q": "support"}'
    with pytest.raises(ConnectorError, match="webhooks\\[0\\].body"):
        check_template("webhooks[0].body", "{{ unclosed ")
    with pytest.raises(ConnectorError, match="lookup.mapping.tier: refused"):
        validate(ConnectorConfig(lookup=Lookup(url="http://x/", mapping={"tier": "response.__class__"})))
    with pytest.raises(ConnectorError, match="not an http"):
        validate(ConnectorConfig(webhooks=[Webhook(events=["offered"], url="file:///etc/passwd")]))


def test_response_mapping_takes_dotted_paths_and_expressions():
    resp = {"customer": {"name": "Erika", "tier": "gold", "orders": [{"id": "A-1"}, {"id": "A-2"}]}}
    got = map_response({"Name": "response.customer.name", "Orders": "response.customer.orders|length",
                        "Last": "response.customer.orders[-1].id", "Missing": "response.customer.nope",
                        "Shout": "response.customer.tier|upper"}, resp)
    assert got == {"Name": "Erika", "Orders": "2", "Last": "A-2", "Shout": "GOLD"}


def test_secrets_are_masked_and_a_masked_value_keeps_the_stored_one():
    stored = ConnectorConfig(lookup=Lookup(url="http://x/", headers=[
        Header(name="Authorization", value="Bearer sk-live-123456abcd", secret=True), Header(name="X-Plain", value="p")]))
    shown = masked(stored)
    assert shown["lookup"]["headers"][0]["value"] == "****abcd" and shown["lookup"]["headers"][1]["value"] == "p"
    assert "sk-live" not in str(shown)
    again = ConnectorConfig(lookup=Lookup(url="http://y/", headers=[Header(name="authorization", value="****abcd", secret=True)]))
    assert keep_secrets(again, stored).lookup.headers[0].value == "Bearer sk-live-123456abcd"
    orphan = ConnectorConfig(webhooks=[Webhook(events=["offered"], url="http://z/",
                                               headers=[Header(name="X-Key", value="****abcd", secret=True)])])
    with pytest.raises(ConnectorError, match="X-Key"):
        keep_secrets(orphan, stored)


def test_numbers_are_normalised_to_e164_with_the_region():
    assert normalise("030 1234567", "DE") == "+49301234567"
    assert normalise("+49 (30) 123-4567", None) == "+49301234567"
    assert normalise("0049 30 1234567", "DE") == "+49301234567"
    assert normalise("(212) 555-0100", "US") == "+12125550100"
    for bad, region in (("030 1234567", None), ("hello", "DE"), ("1", "DE")):
        with pytest.raises(BadNumber):
            normalise(bad, region)
