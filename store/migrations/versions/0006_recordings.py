"""recordings

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recordings",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.String(length=64), nullable=False),
        sa.Column("call_record_id", sa.Integer(), nullable=True),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("bytes", sa.Integer(), nullable=True),
        sa.Column("path", sa.String(length=200), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("deleted_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["agent_id"], ["users.id"], name=op.f("fk_recordings_agent_id_users"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(
            ["call_record_id"], ["call_records.id"], name=op.f("fk_recordings_call_record_id_call_records"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_recordings_tenant_id_tenants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recordings")),
    )
    op.create_index("ix_recordings_tenant_contact", "recordings", ["tenant_id", "contact_id"], unique=False)
    op.create_index("ix_recordings_tenant_started", "recordings", ["tenant_id", "started_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_recordings_tenant_started", table_name="recordings")
    op.drop_index("ix_recordings_tenant_contact", table_name="recordings")
    op.drop_table("recordings")
