"""users.locale_chosen: follow the browser's language until the user picks one

Users who already have a language other than the default picked it in Settings, so
theirs counts as chosen; the rest follow their browser from their next sign-in.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 14:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("locale_chosen", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    users = sa.table(
        "users", sa.column("locale", sa.String), sa.column("locale_chosen", sa.Boolean)
    )
    op.execute(users.update().where(users.c.locale != "en").values(locale_chosen=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("locale_chosen")
