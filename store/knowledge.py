"""The knowledge base's queries: snippets, articles (with full-text search), work instructions and
their acknowledgements. Like `TenantRepo`, `KnowledgeRepo` is bound to one tenant and never commits.

Search uses the index migration 0104 built for the dialect: PostgreSQL's `plainto_tsquery` over
the stored tsvector (GIN; the title's own tsvector has a GIN index too), ranked by `ts_rank_cd`
(title weighs more than body); SQLite's FTS5 `MATCH`
ranked by `bm25` with the same weighting. One function, `search`, picks the query.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import case, delete, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import Article, ArticleScope, InstructionAck, Snippet, WorkInstruction

MAX_TERMS = 16
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


@dataclass(frozen=True, slots=True)
class Hit:
    article: Article
    # Higher is better, comparable within one search only.
    rank: float


def search_terms(q: str) -> list[str]:
    """The words of a query (letters and digits), at most MAX_TERMS; raise ValueError when there are none."""
    terms = _WORD.findall(q)[:MAX_TERMS]
    if not terms:
        raise ValueError("q: the query has no words to search for")
    return terms


# Articles for every queue (no queue scope) or for the given one.
_QUEUE_FILTER = """
  AND (NOT EXISTS (SELECT 1 FROM kb_article_scopes s WHERE s.article_id = a.id AND s.kind = 'queue')
       OR EXISTS (SELECT 1 FROM kb_article_scopes s WHERE s.article_id = a.id AND s.kind = 'queue'
                  AND s.value = :queue))"""

# Ranking costs per matching article (bm25 or ts_rank_cd reads each one's index entry), and a word
# found in most articles matches tens of thousands. Up to CANDIDATES matches every match is ranked;
# beyond, only the articles with every word in the title are ranked (they rank first anyway; at most
# CANDIDATES of them), and the newest of the others follow. load/bench_kb.py shows the cost this bounds.
CANDIDATES = 2000

# {match}: the text-search condition; {queue}: _QUEUE_FILTER or nothing.
_PG_FROM = "FROM kb_articles a WHERE a.tenant_id = :tenant AND {match}{queue}"
# Every word anywhere, or every word in the title (its own GIN index: no row is read to tell).
_PG_WORDS = "a.search_vector @@ plainto_tsquery('english', :q)"
_PG_TITLE = "to_tsvector('english', a.title) @@ plainto_tsquery('english', :q)"
_PG_RANK = "ts_rank_cd(a.search_vector, plainto_tsquery('english', :q))"
_SQLITE_FROM = (
    "FROM kb_articles_fts JOIN kb_articles a ON a.id = kb_articles_fts.rowid"
    " WHERE kb_articles_fts MATCH {match} AND a.tenant_id = :tenant{queue}"
)
_SQLITE_RANK = "-bm25(kb_articles_fts, 10.0, 1.0)"


class KnowledgeRepo:
    def __init__(self, session: AsyncSession, tenant_id: int) -> None:
        assert tenant_id > 0, "a tenant id is positive"
        self.session = session
        self.tenant_id = tenant_id

    # -- snippets
    async def snippets(self, queue_ids: Iterable[int] | None = None) -> Sequence[Snippet]:
        """Every snippet, or (queue_ids given) the tenant-wide ones and those of these queues."""
        q = select(Snippet).where(Snippet.tenant_id == self.tenant_id)
        if queue_ids is not None:
            q = q.where(or_(Snippet.queue_id.is_(None), Snippet.queue_id.in_(list(queue_ids))))
        return (await self.session.execute(q.order_by(Snippet.shortcut))).scalars().all()

    async def snippet(self, snippet_id: int) -> Snippet | None:
        q = select(Snippet).where(Snippet.tenant_id == self.tenant_id, Snippet.id == snippet_id)
        return (await self.session.execute(q)).scalar_one_or_none()

    async def snippet_by_shortcut(self, shortcut: str) -> Snippet | None:
        q = select(Snippet).where(Snippet.tenant_id == self.tenant_id, Snippet.shortcut == shortcut)
        return (await self.session.execute(q)).scalar_one_or_none()

    async def add_snippet(self, **fields: object) -> Snippet:
        row = Snippet(tenant_id=self.tenant_id, **fields)
        self.session.add(row)
        await self.session.flush()
        return row

    # -- articles
    async def article(self, article_id: int) -> Article | None:
        q = select(Article).where(Article.tenant_id == self.tenant_id, Article.id == article_id)
        return (await self.session.execute(q)).scalar_one_or_none()

    async def articles(self, limit: int = 100) -> Sequence[Article]:
        q = (select(Article).where(Article.tenant_id == self.tenant_id)
             .order_by(Article.updated_at.desc(), Article.id.desc()).limit(limit))
        return (await self.session.execute(q)).scalars().all()

    async def save_article(self, row: Article | None, **fields: object) -> Article:
        """Insert (row None) or update an article, and its queue and wrap-up scopes."""
        if row is None:
            row = Article(tenant_id=self.tenant_id, **fields)
            self.session.add(row)
        else:
            for k, v in fields.items():
                setattr(row, k, v)
        await self.session.flush()
        await self.session.execute(delete(ArticleScope).where(ArticleScope.article_id == row.id))
        scopes = [("queue", v) for v in row.queues] + [("wrapup", v) for v in row.wrapup_codes]
        self.session.add_all(
            ArticleScope(tenant_id=self.tenant_id, article_id=row.id, kind=k, value=v) for k, v in set(scopes)
        )
        await self.session.flush()
        return row

    async def add_articles(self, rows: Iterable[dict[str, object]]) -> None:
        """Many articles at once (seeding, benchmarks): fields without tenant_id; scopes included."""
        for fields in rows:
            await self.save_article(None, **fields)

    async def delete(self, row: Article | Snippet) -> None:
        await self.session.delete(row)
        await self.session.flush()

    async def search(self, q: str, queue: str | None = None, limit: int = 20) -> list[Hit]:
        """Articles matching every word of `q`, best first; only those for `queue` (or all queues) when given."""
        terms = search_terms(q)
        pg = self.session.get_bind().dialect.name == "postgresql"
        qf = _QUEUE_FILTER if queue else ""
        # Both engines get the words only, so the query means the same on both (every word, stemmed)
        # and neither query syntax ever sees the user's text: FTS5 each word quoted, PostgreSQL
        # plainto_tsquery (which ANDs them).
        if pg:
            words = title = " ".join(terms)
        else:
            words = " ".join(f'"{t}"' for t in terms)
            title = f"title : ({words})"
        params: dict[str, object] = {"q": words, "qt": title, "tenant": self.tenant_id, "limit": limit}
        if queue:
            params["queue"] = queue

        def frm(match: str) -> str:
            if pg:
                return _PG_FROM.format(match=_PG_WORDS if match == ":q" else _PG_TITLE, queue=qf)
            return _SQLITE_FROM.format(match=match, queue=qf)

        def rank(match: str) -> str:
            return _PG_RANK if pg else _SQLITE_RANK

        run = self.session.execute
        many = (await run(text(f"SELECT count(*) FROM (SELECT a.id {frm(':q')} LIMIT :cap) m"),
                          {**params, "cap": CANDIDATES + 1})).scalar_one() > CANDIDATES
        best = ":qt" if many else ":q"
        if many:  # a word in thousands of titles too: rank CANDIDATES of them, not all
            cols = "a.id, a.search_vector" if pg else f"a.id, {rank(best)} AS rank"
            sql = f"SELECT a.id, {rank(best) if pg else 'a.rank'} AS rank FROM (SELECT {cols} {frm(best)} LIMIT :cap) a"
        else:
            sql = f"SELECT a.id, {rank(best)} AS rank {frm(best)}"
        ranked = list((await run(text(f"{sql} ORDER BY rank DESC, a.id DESC LIMIT :limit"),
                                 {**params, "cap": CANDIDATES})).all())
        if many and len(ranked) < limit:
            newest = await run(text(
                f"SELECT a.id, 0.0 {frm(':q')} ORDER BY a.updated_at DESC, a.id DESC LIMIT :limit"
            ), params)
            seen = {r[0] for r in ranked}
            ranked += [r for r in newest.all() if r[0] not in seen][: limit - len(ranked)]
        if not ranked:
            return []
        by_id = {a.id: a for a in (await self.session.execute(
            select(Article).where(Article.tenant_id == self.tenant_id, Article.id.in_([r[0] for r in ranked]))
        )).scalars()}
        return [Hit(by_id[i], float(r)) for i, r in ranked if i in by_id]

    async def suggest(self, queue: str | None, wrapup_codes: Sequence[str], limit: int = 10) -> list[Hit]:
        """Articles related to the queue or the wrap-up codes; a wrap-up code counts twice a queue."""
        conds = []
        if queue:
            conds.append((ArticleScope.kind == "queue") & (ArticleScope.value == queue))
        if wrapup_codes:
            conds.append((ArticleScope.kind == "wrapup") & ArticleScope.value.in_(list(wrapup_codes)))
        if not conds:
            return []
        score = func.sum(case((ArticleScope.kind == "wrapup", 2), else_=1)).label("score")
        q = (
            select(Article, score)
            .join(ArticleScope, ArticleScope.article_id == Article.id)
            .where(Article.tenant_id == self.tenant_id, ArticleScope.tenant_id == self.tenant_id, or_(*conds))
            .group_by(Article.id)
            .order_by(score.desc(), Article.updated_at.desc(), Article.id.desc())
            .limit(limit)
        )
        return [Hit(a, float(s)) for a, s in (await self.session.execute(q)).all()]

    # -- work instructions
    async def add_instruction(self, **fields: object) -> WorkInstruction:
        row = WorkInstruction(tenant_id=self.tenant_id, **fields)
        self.session.add(row)
        await self.session.flush()
        return row

    async def instruction(self, instruction_id: int) -> WorkInstruction | None:
        q = select(WorkInstruction).where(
            WorkInstruction.tenant_id == self.tenant_id, WorkInstruction.id == instruction_id
        )
        return (await self.session.execute(q)).scalar_one_or_none()

    async def instructions(self, now: float, include_expired: bool = False, limit: int = 100) -> Sequence[WorkInstruction]:
        """Newest first; by default only those not expired at `now`."""
        q = select(WorkInstruction).where(WorkInstruction.tenant_id == self.tenant_id)
        if not include_expired:
            q = q.where(or_(WorkInstruction.expires_at.is_(None), WorkInstruction.expires_at > now))
        q = q.order_by(WorkInstruction.published_at.desc(), WorkInstruction.id.desc()).limit(limit)
        return (await self.session.execute(q)).scalars().all()

    async def acks(self, instruction_ids: Iterable[int]) -> dict[int, dict[int, float]]:
        """instruction id → agent id → when acknowledged."""
        ids = list(instruction_ids)
        if not ids:
            return {}
        q = select(InstructionAck.instruction_id, InstructionAck.user_id, InstructionAck.at).where(
            InstructionAck.tenant_id == self.tenant_id, InstructionAck.instruction_id.in_(ids)
        )
        out: dict[int, dict[int, float]] = {i: {} for i in ids}
        for iid, uid, at in (await self.session.execute(q)).all():
            out[iid][uid] = at
        return out

    async def ack(self, instruction_id: int, user_id: int, now: float) -> tuple[float, bool]:
        """Record the agent's acknowledgement; returns when, and whether it is new (a repeat keeps the first)."""
        q = select(InstructionAck).where(
            InstructionAck.tenant_id == self.tenant_id,
            InstructionAck.instruction_id == instruction_id,
            InstructionAck.user_id == user_id,
        )
        existing = (await self.session.execute(q)).scalar_one_or_none()
        if existing is not None:
            return existing.at, False
        self.session.add(InstructionAck(tenant_id=self.tenant_id, instruction_id=instruction_id, user_id=user_id, at=now))
        await self.session.flush()
        return now, True


