"""sip routes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sip_routes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=128), nullable=False),
        sa.Column("queue_id", sa.Integer(), nullable=True),
        sa.Column("allow_from", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["queue_id"], ["queues.id"], name=op.f("fk_sip_routes_queue_id_queues"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_sip_routes_tenant_id_tenants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sip_routes")),
        sa.UniqueConstraint("address", name=op.f("uq_sip_routes_address")),
    )
    with op.batch_alter_table("sip_routes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sip_routes_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sip_routes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sip_routes_tenant_id"))
    op.drop_table("sip_routes")
