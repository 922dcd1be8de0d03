"""The knowledge base in the store on the backend under test: full-text search (ranking, queue filter,
tenant scoping), suggestions, acknowledgements; and the pure text helpers (Markdown sanitising,
snippet placeholders)."""

import time
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from realtime.kbtext import check_snippet, markdown_html, render_snippet
from store.db import make_engine, make_sessionmaker
from store.knowledge import KnowledgeRepo, search_terms
from store.migrate import check, upgrade
from store.repos import create_tenant
from tests.conftest import drop_backend, make_backend


@pytest.fixture
def db(tmp_path):
    b = make_backend(tmp_path)
    url = b.database_url.replace("sqlite://", "sqlite+aiosqlite://").replace("postgresql://", "postgresql+asyncpg://")
    upgrade(url)
    yield url
    drop_backend(b)


def article(title: str, body: str, queues=(), codes=()) -> dict:
    return dict(title=title, body_md=body, tags=[], queues=list(queues), wrapup_codes=list(codes),
                updated_at=time.time(), updated_by=None)


async def test_search_ranks_filters_by_queue_and_stays_in_its_tenant(db, monkeypatch):
    check(db)  # the full-text structures do not disturb the models' comparison
    engine = make_engine(db)
    sm = make_sessionmaker(engine)
    async with sm() as s, s.begin():
        a = await create_tenant(s, "a", "A", time.time())
        b = await create_tenant(s, "b", "B", time.time())
        ra = KnowledgeRepo(s, a.id)
        await ra.add_articles([
            article("Refund policy", "How to refund an order within 30 days.", ["support"], ["resolved"]),
            article("Shipping times", "Parcels arrive in 3 days. A refund is possible when lost.", ["sales"]),
            article("Router reset", "Hold the reset button for ten seconds.", codes=["escalated"]),
            article("Outage north", "Region north is down; tell callers about the outage."),
        ])
        await KnowledgeRepo(s, b.id).add_articles([article("Refund at B", "refund refund refund")])
    async with sm() as s:
        ra = KnowledgeRepo(s, a.id)
        hits = await ra.search("refund")
        # The word in the title outranks the word in the body only.
        assert [h.article.title for h in hits] == ["Refund policy", "Shipping times"]
        assert hits[0].rank > hits[1].rank
        # Stemming: "refunds" finds "refund"; every word must match.
        assert [h.article.title for h in await ra.search("refunds")] == ["Refund policy", "Shipping times"]
        assert [h.article.title for h in await ra.search("refund lost")] == ["Shipping times"]
        # Queue filter: articles for that queue and for every queue.
        assert [h.article.title for h in await ra.search("refund", queue="support")] == ["Refund policy"]
        assert [h.article.title for h in await ra.search("outage", queue="sales")] == ["Outage north"]
        # Odd input never reaches the engines' own syntax.
        assert [h.article.title for h in await ra.search('"reset" (button* -')] == ["Router reset"]
        assert await ra.search('refund" OR "zebra') == []
        # Tenant B's article is never found from A, and A's never from B.
        assert all(h.article.tenant_id == a.id for h in await ra.search("refund"))
        assert [h.article.title for h in await KnowledgeRepo(s, b.id).search("refund")] == ["Refund at B"]
        assert await KnowledgeRepo(s, b.id).search("shipping") == []
        # A word in more articles than are ranked: those with it in the title first, then the newest others.
        import store.knowledge

        monkeypatch.setattr(store.knowledge, "CANDIDATES", 1)
        assert [h.article.title for h in await ra.search("refund")] == ["Refund policy", "Shipping times"]
        assert [h.article.title for h in await ra.search("refund", limit=1)] == ["Refund policy"]
        assert [h.article.title for h in await ra.search("refund", queue="sales")] == ["Shipping times"]
        monkeypatch.undo()
        # Suggestions by queue and wrap-up code (a code counts more).
        sug = await ra.suggest("support", ["escalated"])
        assert [h.article.title for h in sug] == ["Router reset", "Refund policy"]
        assert await KnowledgeRepo(s, b.id).suggest("support", ["escalated"]) == []
    # Changing and deleting an article keeps the index in step.
    async with sm() as s, s.begin():
        ra = KnowledgeRepo(s, a.id)
        row = (await ra.search("router"))[0].article
        await ra.save_article(row, title="Modem reset", body_md="Unplug the modem.")
    async with sm() as s, s.begin():
        ra = KnowledgeRepo(s, a.id)
        assert await ra.search("router") == []
        row = (await ra.search("modem"))[0].article
        await ra.delete(row)
    async with sm() as s:
        assert await KnowledgeRepo(s, a.id).search("modem") == []
    await engine.dispose()


async def test_acknowledgements_are_kept_once(db):
    engine = make_engine(db)
    sm = make_sessionmaker(engine)
    now = time.time()
    async with sm() as s, s.begin():
        t = await create_tenant(s, "t", "T", now)
        repo = KnowledgeRepo(s, t.id)
        ins = await repo.add_instruction(queues=["support"], agent_ids=[], text="x", published_by=None,
                                         published_at=now, expires_at=now + 60)
        old = await repo.add_instruction(queues=["support"], agent_ids=[], text="y", published_by=None,
                                         published_at=now - 120, expires_at=now - 60)
    async with sm() as s, s.begin():
        repo = KnowledgeRepo(s, t.id)
        assert [i.id for i in await repo.instructions(now)] == [ins.id]
        assert [i.id for i in await repo.instructions(now, include_expired=True)] == [ins.id, old.id]
    await engine.dispose()


def test_search_terms_need_a_word():
    assert search_terms("  refund, order #42!") == ["refund", "order", "42"]
    with pytest.raises(ValueError, match="q: the query has no words"):
        search_terms(" \"*()- ")


class _Elements(HTMLParser):
    """Every element of an HTML fragment with its attributes (text, escaped or not, is not an element)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        self.found.append((tag, {k: v or "" for k, v in attrs}))


@pytest.mark.parametrize("md", [
    "<script>alert(1)</script>",
    '<img src="x" onerror="alert(1)">',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](java&#x09;script:alert(1))",
    '<a href="javascript:alert(1)">x</a>',
    "![x](javascript:alert(1))",
    '<div onclick="x()">hi</div>',
    "[x](data:text/html;base64,PHNjcmlwdD4=)",
    '<svg><script>alert(1)</script></svg>',
    '<iframe src="https://evil.example"></iframe>',
    '[ok](https://example.org "t\" onmouseover=\"alert(1)")',
])
def test_markdown_is_rendered_without_scripts_handlers_or_javascript_urls(md):
    html = markdown_html(md)
    for tag, attrs in _Elements(html).found:
        assert tag not in ("script", "iframe", "svg", "object", "style"), html
        for name, value in attrs.items():
            assert not name.startswith("on"), html
            if name in ("href", "src"):
                # A scheme the browser would run never survives; a relative URL (no scheme) may.
                assert urlsplit(value).scheme in ("", "http", "https", "mailto"), html
                assert not any(c in value for c in "\t\n\r\x00 "), html


def test_markdown_keeps_formatting_and_safe_links():
    html = markdown_html("# Title\n\n**bold** and [docs](https://example.org/x) and `code`\n\n- one\n- two")
    assert "<h1>Title</h1>" in html and "<strong>bold</strong>" in html and "<code>code</code>" in html
    assert 'href="https://example.org/x"' in html and 'rel="noopener noreferrer nofollow"' in html
    assert "<li>one</li>" in html


def test_snippet_placeholders_are_whitelisted_and_filled_as_text():
    check_snippet("Hello {{customer.name}}, order {{ data.order }} — {{agent.name}}")
    with pytest.raises(ValueError, match=r"unknown placeholder \{\{customer.password\}\}"):
        check_snippet("{{customer.password}}")
    with pytest.raises(ValueError, match="unknown placeholder"):
        check_snippet("{{ __class__ }}")
    out = render_snippet("Hi {{customer.name}} ({{data.order}}), {{agent.name}}{{customer.number}}",
                         {"customer.name": "<b>Eve</b> {{agent.name}}", "data.order": "A-1", "agent.name": "Al"})
    # Values are inserted as they are, once: a value that looks like a placeholder stays text.
    assert out == "Hi <b>Eve</b> {{agent.name}} (A-1), Al"
