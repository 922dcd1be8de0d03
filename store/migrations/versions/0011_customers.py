"""customers, their numbers, addresses and changes; CRM connectors and webhook deliveries

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    name = target.split(".")[0]
    return sa.ForeignKeyConstraint([column], [target], name=op.f(f"fk_{table}_{column}_{name}"), ondelete=ondelete)


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("first_name", sa.String(length=100), nullable=False),
        sa.Column("last_name", sa.String(length=100), nullable=False),
        sa.Column("company", sa.String(length=200), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        _fk("customers", "tenant_id", "tenants.id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
    )
    op.create_index("ix_customers_tenant_last_name", "customers", ["tenant_id", "last_name"], unique=False)
    op.create_table(
        "customer_numbers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=32), nullable=False),
        _fk("customer_numbers", "customer_id", "customers.id", "CASCADE"),
        _fk("customer_numbers", "tenant_id", "tenants.id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_numbers")),
    )
    op.create_index(op.f("ix_customer_numbers_customer_id"), "customer_numbers", ["customer_id"], unique=False)
    op.create_index("ix_customer_numbers_tenant_number", "customer_numbers", ["tenant_id", "number"], unique=False)
    op.create_table(
        "customer_addresses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=32), nullable=False),
        sa.Column("street", sa.String(length=200), nullable=False),
        sa.Column("postcode", sa.String(length=20), nullable=False),
        sa.Column("city", sa.String(length=100), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        _fk("customer_addresses", "customer_id", "customers.id", "CASCADE"),
        _fk("customer_addresses", "tenant_id", "tenants.id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_addresses")),
    )
    op.create_index(op.f("ix_customer_addresses_customer_id"), "customer_addresses", ["customer_id"], unique=False)
    op.create_table(
        "customer_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("field", sa.String(length=100), nullable=False),
        sa.Column("old", sa.Text(), nullable=True),
        sa.Column("new", sa.Text(), nullable=True),
        _fk("customer_changes", "customer_id", "customers.id", "CASCADE"),
        _fk("customer_changes", "tenant_id", "tenants.id", "CASCADE"),
        _fk("customer_changes", "user_id", "users.id", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_changes")),
    )
    op.create_index(
        "ix_customer_changes_tenant_customer_at", "customer_changes", ["tenant_id", "customer_id", "at"], unique=False
    )
    op.create_table(
        "crm_connectors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("lookup", sa.JSON(), nullable=True),
        sa.Column("webhooks", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        _fk("crm_connectors", "tenant_id", "tenants.id", "CASCADE"),
        _fk("crm_connectors", "updated_by", "users.id", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_connectors")),
        sa.UniqueConstraint("tenant_id", name=op.f("uq_crm_connectors_tenant_id")),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("contact_id", sa.String(length=64), nullable=True),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("log", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        _fk("webhook_deliveries", "tenant_id", "tenants.id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index(
        "ix_webhook_deliveries_tenant_created", "webhook_deliveries", ["tenant_id", "created_at"], unique=False
    )
    with op.batch_alter_table("call_records") as batch:
        batch.add_column(sa.Column("customer_id", sa.Integer(), nullable=True))
        batch.create_index(op.f("ix_call_records_customer_id"), ["customer_id"], unique=False)
        batch.create_foreign_key(
            op.f("fk_call_records_customer_id_customers"), "customers", ["customer_id"], ["id"], ondelete="SET NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table("call_records") as batch:
        batch.drop_constraint(op.f("fk_call_records_customer_id_customers"), type_="foreignkey")
        batch.drop_index(op.f("ix_call_records_customer_id"))
        batch.drop_column("customer_id")
    op.drop_index("ix_webhook_deliveries_tenant_created", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("crm_connectors")
    op.drop_index("ix_customer_changes_tenant_customer_at", table_name="customer_changes")
    op.drop_table("customer_changes")
    op.drop_index(op.f("ix_customer_addresses_customer_id"), table_name="customer_addresses")
    op.drop_table("customer_addresses")
    op.drop_index("ix_customer_numbers_tenant_number", table_name="customer_numbers")
    op.drop_index(op.f("ix_customer_numbers_customer_id"), table_name="customer_numbers")
    op.drop_table("customer_numbers")
    op.drop_index("ix_customers_tenant_last_name", table_name="customers")
    op.drop_table("customers")
