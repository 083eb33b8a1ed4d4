"""The audit trail: the caller's domain and project on a task, and who joined it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07

Existing tasks keep what they had (a user name and id); their new columns stay empty.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task") as batch:
        batch.add_column(sa.Column("requested_by_domain", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("requested_by_project_id", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column("requested_by_project_name", sa.String(length=255), nullable=True)
        )
    op.create_table(
        "task_join",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=True),
        sa.Column("user_name", sa.String(length=255), nullable=True),
        sa.Column("user_domain", sa.String(length=64), nullable=True),
        sa.Column("project_id", sa.String(length=64), nullable=True),
        sa.Column("project_name", sa.String(length=255), nullable=True),
        sa.Column("joined_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_task_join_task_id", "task_join", ["task_id"])


def downgrade() -> None:
    op.drop_index("ix_task_join_task_id", table_name="task_join")
    op.drop_table("task_join")
    with op.batch_alter_table("task") as batch:
        batch.drop_column("requested_by_project_name")
        batch.drop_column("requested_by_project_id")
        batch.drop_column("requested_by_domain")
