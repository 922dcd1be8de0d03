"""per-queue data forms, their published versions and the answers stored with contacts

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"),
                                   ondelete=ondelete)


def upgrade() -> None:
    op.create_table(
        "forms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("queue_id", sa.Integer(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("published_version", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        _fk("forms", "tenant_id", "tenants", "CASCADE"),
        _fk("forms", "queue_id", "queues", "CASCADE"),
        _fk("forms", "updated_by", "users", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forms")),
        sa.UniqueConstraint("tenant_id", "queue_id", name=op.f("uq_forms_tenant_id")),
    )
    op.create_table(
        "form_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("form_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("published_at", sa.Float(), nullable=False),
        sa.Column("published_by", sa.Integer(), nullable=True),
        _fk("form_versions", "tenant_id", "tenants", "CASCADE"),
        _fk("form_versions", "form_id", "forms", "CASCADE"),
        _fk("form_versions", "published_by", "users", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_form_versions")),
        sa.UniqueConstraint("form_id", "version", name=op.f("uq_form_versions_form_id")),
    )
    op.create_index(op.f("ix_form_versions_tenant_id"), "form_versions", ["tenant_id"], unique=False)
    op.create_table(
        "form_answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.String(length=64), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("form_version_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("draft", sa.Boolean(), nullable=False),
        sa.Column("filled_by", sa.Integer(), nullable=True),
        sa.Column("filled_at", sa.Float(), nullable=False),
        _fk("form_answers", "tenant_id", "tenants", "CASCADE"),
        _fk("form_answers", "form_version_id", "form_versions", "CASCADE"),
        _fk("form_answers", "filled_by", "users", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_form_answers")),
        sa.UniqueConstraint("tenant_id", "contact_id", name=op.f("uq_form_answers_tenant_id")),
    )
    op.create_index("ix_form_answers_tenant_queue_filled", "form_answers", ["tenant_id", "queue", "filled_at"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_form_answers_tenant_queue_filled", table_name="form_answers")
    op.drop_table("form_answers")
    op.drop_index(op.f("ix_form_versions_tenant_id"), table_name="form_versions")
    op.drop_table("form_versions")
    op.drop_table("forms")
