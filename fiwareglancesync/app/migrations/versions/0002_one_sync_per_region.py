"""Leases, the caller's id, and at most one syncing task per region.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02

Tasks that were syncing when the database is upgraded belong to a server of the previous
version, which is stopped by then: they are failed, so the new unique index can be built
and their regions are free.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SYNCING_ONLY = sa.text("status = 'syncing'")


def upgrade() -> None:
    op.execute(
        "UPDATE task SET status = 'failed', "
        "message = 'The sync was interrupted: the service was upgraded' "
        "WHERE status = 'syncing'"
    )
    with op.batch_alter_table("task") as batch:
        batch.add_column(sa.Column("requested_by_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("owner", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(), nullable=True))
        batch.create_index(
            "uq_task_region_syncing",
            ["region"],
            unique=True,
            sqlite_where=SYNCING_ONLY,
            postgresql_where=SYNCING_ONLY,
        )


def downgrade() -> None:
    with op.batch_alter_table("task") as batch:
        batch.drop_index("uq_task_region_syncing")
        batch.drop_column("lease_expires_at")
        batch.drop_column("owner")
        batch.drop_column("requested_by_id")
