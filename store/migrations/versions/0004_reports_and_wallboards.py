"""reports and wallboards: queue segments and offers of every contact, wallboard tokens

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contact_segments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.String(length=64), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("entered_at", sa.Float(), nullable=False),
        sa.Column("left_at", sa.Float(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("service_level_seconds", sa.Float(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("answered_at", sa.Float(), nullable=True),
        sa.Column("talk_seconds", sa.Float(), nullable=False),
        sa.Column("hold_seconds", sa.Float(), nullable=False),
        sa.Column("wrap_up_seconds", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["users.id"], name=op.f("fk_contact_segments_agent_id_users"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_contact_segments_tenant_id_tenants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_segments")),
    )
    with op.batch_alter_table("contact_segments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contact_segments_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index("ix_contact_segments_tenant_entered", ["tenant_id", "entered_at"], unique=False)
    op.create_table(
        "contact_offers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("offered_at", sa.Float(), nullable=False),
        sa.Column("resolved_at", sa.Float(), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["users.id"], name=op.f("fk_contact_offers_agent_id_users"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_contact_offers_tenant_id_tenants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_offers")),
    )
    with op.batch_alter_table("contact_offers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contact_offers_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index("ix_contact_offers_tenant_offered", ["tenant_id", "offered_at"], unique=False)
    op.create_table(
        "wallboards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("queues", sa.JSON(), nullable=False),
        sa.Column("thresholds", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_wallboards_created_by_users"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_wallboards_tenant_id_tenants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallboards")),
    )
    with op.batch_alter_table("wallboards", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_wallboards_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("wallboards", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wallboards_tenant_id"))
    op.drop_table("wallboards")
    with op.batch_alter_table("contact_offers", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_offers_tenant_offered")
        batch_op.drop_index(batch_op.f("ix_contact_offers_contact_id"))
    op.drop_table("contact_offers")
    with op.batch_alter_table("contact_segments", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_segments_tenant_entered")
        batch_op.drop_index(batch_op.f("ix_contact_segments_contact_id"))
    op.drop_table("contact_segments")
