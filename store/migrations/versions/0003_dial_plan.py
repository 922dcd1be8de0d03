"""dial plan: opening hours, closed prompt and menus on SIP routes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sip_routes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hours", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("closed_prompt", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("ivr", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sip_routes", schema=None) as batch_op:
        batch_op.drop_column("ivr")
        batch_op.drop_column("closed_prompt")
        batch_op.drop_column("hours")
