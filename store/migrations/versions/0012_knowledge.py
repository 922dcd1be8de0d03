"""snippets, knowledge-base articles with a full-text index, work instructions and their acknowledgements

The full-text index depends on the dialect: on PostgreSQL a stored tsvector column (title weighted A,
body B) with a GIN index, and a GIN index of the title's tsvector alone; on SQLite an FTS5 table over title and body kept in step by triggers. Neither
is in the models: store/knowledge.py queries them, and env.py leaves them out of the comparison.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

PG_VECTOR = (
    "setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', body_md), 'B')"
)

SQLITE_FTS = [
    "CREATE VIRTUAL TABLE kb_articles_fts USING fts5(title, body_md, content='kb_articles', content_rowid='id',"
    " tokenize='porter unicode61')",
    "CREATE TRIGGER kb_articles_fts_ai AFTER INSERT ON kb_articles BEGIN"
    " INSERT INTO kb_articles_fts(rowid, title, body_md) VALUES (new.id, new.title, new.body_md); END",
    "CREATE TRIGGER kb_articles_fts_ad AFTER DELETE ON kb_articles BEGIN"
    " INSERT INTO kb_articles_fts(kb_articles_fts, rowid, title, body_md) VALUES ('delete', old.id, old.title, old.body_md);"
    " END",
    "CREATE TRIGGER kb_articles_fts_au AFTER UPDATE OF title, body_md ON kb_articles BEGIN"
    " INSERT INTO kb_articles_fts(kb_articles_fts, rowid, title, body_md) VALUES ('delete', old.id, old.title, old.body_md);"
    " INSERT INTO kb_articles_fts(rowid, title, body_md) VALUES (new.id, new.title, new.body_md); END",
]


def upgrade() -> None:
    op.create_table(
        "snippets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("queue_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("shortcut", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["queue_id"], ["queues.id"], name=op.f("fk_snippets_queue_id_queues"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_snippets_tenant_id_tenants"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["updated_by"], ["users.id"], name=op.f("fk_snippets_updated_by_users"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_snippets")),
        sa.UniqueConstraint("tenant_id", "shortcut", name=op.f("uq_snippets_tenant_id")),
    )
    op.create_index(op.f("ix_snippets_tenant_id"), "snippets", ["tenant_id"], unique=False)
    op.create_table(
        "kb_articles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("body_md", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("queues", sa.JSON(), nullable=False),
        sa.Column("wrapup_codes", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_kb_articles_tenant_id_tenants"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["updated_by"], ["users.id"], name=op.f("fk_kb_articles_updated_by_users"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_articles")),
    )
    op.create_index("ix_kb_articles_tenant_updated", "kb_articles", ["tenant_id", "updated_at"], unique=False)
    op.create_table(
        "kb_article_scopes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"], ["kb_articles.id"], name=op.f("fk_kb_article_scopes_article_id_kb_articles"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_kb_article_scopes_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_article_scopes")),
    )
    op.create_index(op.f("ix_kb_article_scopes_article_id"), "kb_article_scopes", ["article_id"], unique=False)
    op.create_index(
        "ix_kb_article_scopes_tenant_kind_value", "kb_article_scopes", ["tenant_id", "kind", "value"], unique=False
    )
    op.create_table(
        "work_instructions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("queues", sa.JSON(), nullable=False),
        sa.Column("agent_ids", sa.JSON(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("published_by", sa.Integer(), nullable=True),
        sa.Column("published_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["published_by"], ["users.id"], name=op.f("fk_work_instructions_published_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_work_instructions_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_instructions")),
    )
    op.create_index(
        "ix_work_instructions_tenant_published", "work_instructions", ["tenant_id", "published_at"], unique=False
    )
    op.create_table(
        "instruction_acks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("instruction_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["instruction_id"], ["work_instructions.id"],
            name=op.f("fk_instruction_acks_instruction_id_work_instructions"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_instruction_acks_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_instruction_acks_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instruction_acks")),
        sa.UniqueConstraint("instruction_id", "user_id", name=op.f("uq_instruction_acks_instruction_id")),
    )
    op.create_index(op.f("ix_instruction_acks_tenant_id"), "instruction_acks", ["tenant_id"], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE kb_articles ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ({PG_VECTOR}) STORED")
        op.execute("CREATE INDEX ix_kb_articles_search ON kb_articles USING gin (search_vector)")
        # Titles alone: the GIN index above cannot tell a title word from a body word without reading
        # each row, and a common word's search ranks its title matches only (store/knowledge.py).
        op.execute("CREATE INDEX ix_kb_articles_search_title ON kb_articles USING gin (to_tsvector('english', title))")
    else:
        for sql in SQLITE_FTS:
            op.execute(sql)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_kb_articles_search_title")
        op.execute("DROP INDEX IF EXISTS ix_kb_articles_search")
    else:
        for name in ("kb_articles_fts_ai", "kb_articles_fts_ad", "kb_articles_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS kb_articles_fts")
    op.drop_index(op.f("ix_instruction_acks_tenant_id"), table_name="instruction_acks")
    op.drop_table("instruction_acks")
    op.drop_index("ix_work_instructions_tenant_published", table_name="work_instructions")
    op.drop_table("work_instructions")
    op.drop_index("ix_kb_article_scopes_tenant_kind_value", table_name="kb_article_scopes")
    op.drop_index(op.f("ix_kb_article_scopes_article_id"), table_name="kb_article_scopes")
    op.drop_table("kb_article_scopes")
    op.drop_index("ix_kb_articles_tenant_updated", table_name="kb_articles")
    op.drop_table("kb_articles")
    op.drop_index(op.f("ix_snippets_tenant_id"), table_name="snippets")
    op.drop_table("snippets")
