"""chat messages between agents and supervisors

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chat_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("from_id", sa.Integer(), nullable=True),
        sa.Column("to_id", sa.Integer(), nullable=True),
        sa.Column("to_supervisors", sa.Boolean(), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sent_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["from_id"], ["users.id"], name=op.f("fk_chat_messages_from_id_users"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_chat_messages_tenant_id_tenants"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["to_id"], ["users.id"], name=op.f("fk_chat_messages_to_id_users"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_messages")),
    )
    op.create_index("ix_chat_messages_tenant_sent", "chat_messages", ["tenant_id", "sent_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_chat_messages_tenant_sent", table_name="chat_messages")
    op.drop_table("chat_messages")
