"""sip trunks: registration and digest credentials for calls out

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sip_trunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("transport", sa.String(length=8), nullable=False),
        sa.Column("username", sa.String(length=128), nullable=False),
        sa.Column("password", sa.String(length=255), nullable=False),
        sa.Column("realm", sa.String(length=255), nullable=False),
        sa.Column("register", sa.Boolean(), nullable=False),
        sa.Column("expires", sa.Integer(), nullable=False),
        sa.Column("caller_id", sa.String(length=128), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_sip_trunks_tenant_id_tenants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sip_trunks")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_sip_trunks_tenant_id")),
    )
    with op.batch_alter_table("sip_trunks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sip_trunks_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sip_trunks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sip_trunks_tenant_id"))
    op.drop_table("sip_trunks")
