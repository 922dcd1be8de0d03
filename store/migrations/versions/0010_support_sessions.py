"""support sessions: 1:1 video between an agent and a customer who came through a link

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "support_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("contact_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("admitted_at", sa.Float(), nullable=True),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("guest_name", sa.String(length=80), nullable=True),
        sa.Column("guest_ua", sa.String(length=300), nullable=True),
        sa.Column("end_reason", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["agent_id"], ["users.id"], name=op.f("fk_support_sessions_agent_id_users"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_support_sessions_tenant_id_tenants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_sessions")),
    )
    op.create_index("ix_support_sessions_tenant_created", "support_sessions", ["tenant_id", "created_at"], unique=False)
    op.create_index(op.f("ix_support_sessions_contact_id"), "support_sessions", ["contact_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_support_sessions_contact_id"), table_name="support_sessions")
    op.drop_index("ix_support_sessions_tenant_created", table_name="support_sessions")
    op.drop_table("support_sessions")
