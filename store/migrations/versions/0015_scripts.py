"""call scripts: per queue a draft and immutable published versions; each contact's pinned version and path

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scripts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("queue_id", sa.Integer(), nullable=False),
        sa.Column("draft", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["queue_id"], ["queues.id"], name=op.f("fk_scripts_queue_id_queues"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_scripts_tenant_id_tenants"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["updated_by"], ["users.id"], name=op.f("fk_scripts_updated_by_users"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scripts")),
        sa.UniqueConstraint("tenant_id", "queue_id", name=op.f("uq_scripts_tenant_id")),
    )
    op.create_index(op.f("ix_scripts_tenant_id"), "scripts", ["tenant_id"], unique=False)
    op.create_table(
        "script_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("script_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("published_at", sa.Float(), nullable=False),
        sa.Column("published_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["script_id"], ["scripts.id"], name=op.f("fk_script_versions_script_id_scripts"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_script_versions_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["published_by"], ["users.id"], name=op.f("fk_script_versions_published_by_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_script_versions")),
        sa.UniqueConstraint("script_id", "version", name=op.f("uq_script_versions_script_id")),
    )
    op.create_index(op.f("ix_script_versions_tenant_id"), "script_versions", ["tenant_id"], unique=False)
    op.create_table(
        "contact_scripts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.String(length=64), nullable=False),
        sa.Column("script_version_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["script_version_id"], ["script_versions.id"],
                                name=op.f("fk_contact_scripts_script_version_id_script_versions"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_contact_scripts_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_scripts")),
        sa.UniqueConstraint("contact_id", name=op.f("uq_contact_scripts_contact_id")),
    )
    op.create_index(op.f("ix_contact_scripts_tenant_id"), "contact_scripts", ["tenant_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_contact_scripts_tenant_id"), table_name="contact_scripts")
    op.drop_table("contact_scripts")
    op.drop_index(op.f("ix_script_versions_tenant_id"), table_name="script_versions")
    op.drop_table("script_versions")
    op.drop_index(op.f("ix_scripts_tenant_id"), table_name="scripts")
    op.drop_table("scripts")
