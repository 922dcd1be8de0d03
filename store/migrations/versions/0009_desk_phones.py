"""desk phones: an agent's SIP credentials (HA1) and where the agent takes calls

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sip_user", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("sip_ha1", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("phone", sa.String(length=16), nullable=False, server_default="browser"))
        batch_op.create_unique_constraint("uq_users_sip_user", ["sip_user"])


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint("uq_users_sip_user", type_="unique")
        batch_op.drop_column("phone")
        batch_op.drop_column("sip_ha1")
        batch_op.drop_column("sip_user")
