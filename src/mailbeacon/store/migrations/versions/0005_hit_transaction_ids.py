"""hits.xid and processor_cursor.last_xid: read hits in commit-safe order on PostgreSQL

With several hit writers, PostgreSQL allocates `seq` at insert but the
transactions commit in another order, so a cursor on `seq` alone can pass a
hit that commits later. Each hit now records its writer's transaction id and
the processor reads in (xid, seq) order, only below the oldest running
transaction (see mailbeacon/processor/reading.py). SQLite has one writer at a
time: the columns exist there too (one schema) but stay NULL.

Existing hits all take this migration's transaction id (PostgreSQL evaluates
the stable default once), and an existing cursor is moved to that same id with
its `last_seq` kept, so processing resumes exactly where it stopped.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.types import UserDefinedType

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


class _XID8(UserDefinedType[int]):
    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:
        return "XID8"


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    transaction_id = _XID8() if postgres else sa.BigInteger()
    default = sa.text("pg_current_xact_id()") if postgres else sa.text("NULL")
    with op.batch_alter_table("hits", schema=None) as batch_op:
        batch_op.add_column(sa.Column("xid", transaction_id, nullable=True, server_default=default))
        batch_op.create_index(
            "ix_hits_xid_seq",
            ["xid", "seq"],
            unique=False,
            postgresql_where=sa.text("xid IS NOT NULL"),
            sqlite_where=sa.text("xid IS NOT NULL"),
        )
    with op.batch_alter_table("processor_cursor", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_xid", transaction_id, nullable=True))
    if postgres:
        op.execute("UPDATE processor_cursor SET last_xid = pg_current_xact_id()")


def downgrade() -> None:
    with op.batch_alter_table("processor_cursor", schema=None) as batch_op:
        batch_op.drop_column("last_xid")
    with op.batch_alter_table("hits", schema=None) as batch_op:
        batch_op.drop_index("ix_hits_xid_seq")
        batch_op.drop_column("xid")
