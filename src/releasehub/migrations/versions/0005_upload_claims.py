"""upload claims (who sent which bytes to which repo); the card's applied policy keys

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 07:00:00
"""

from alembic import op
import sqlalchemy as sa
import releasehub.db


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('upload_claims',
    sa.Column('repo_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', releasehub.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['repo_id'], ['repos.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('repo_id', 'user_id', 'sha256')
    )
    with op.batch_alter_table('repos', schema=None) as batch_op:
        batch_op.add_column(sa.Column('card_source', sa.JSON(), nullable=True))
    # A commit's files by content: the claim check asks "does this repo hold a file with this oid".
    with op.batch_alter_table('commit_files', schema=None) as batch_op:
        batch_op.create_index('ix_commit_files_sha256', ['sha256'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('commit_files', schema=None) as batch_op:
        batch_op.drop_index('ix_commit_files_sha256')
    with op.batch_alter_table('repos', schema=None) as batch_op:
        batch_op.drop_column('card_source')
    op.drop_table('upload_claims')
