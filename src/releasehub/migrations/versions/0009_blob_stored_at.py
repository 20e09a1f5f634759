"""blobs.stored_at: when a blob's bytes were last stored, for the collector's grace period

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 13:00:00
"""

from alembic import op
import sqlalchemy as sa
import releasehub.db


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('blobs') as batch:
        batch.add_column(sa.Column('stored_at', releasehub.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('blobs') as batch:
        batch.drop_column('stored_at')
