"""xet: verified xorbs and their chunk index, xorb claims per repo and user, reconstructed files and their xorbs

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 08:00:00
"""

from alembic import op
import sqlalchemy as sa
import releasehub.db


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('xet_xorbs',
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('num_chunks', sa.Integer(), nullable=False),
    sa.Column('unpacked_bytes', sa.BigInteger(), nullable=False),
    sa.Column('packed_bytes', sa.BigInteger(), nullable=False),
    sa.Column('chunk_index', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', releasehub.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('hash')
    )
    op.create_table('xet_xorb_claims',
    sa.Column('repo_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('xorb_hash', sa.String(length=64), nullable=False),
    sa.Column('received_bytes', sa.BigInteger(), nullable=False),
    sa.Column('created_at', releasehub.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['repo_id'], ['repos.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['xorb_hash'], ['xet_xorbs.hash']),
    sa.PrimaryKeyConstraint('repo_id', 'user_id', 'xorb_hash')
    )
    op.create_table('xet_files',
    sa.Column('repo_id', sa.Integer(), nullable=False),
    sa.Column('file_hash', sa.String(length=64), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('terms', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', releasehub.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['repo_id'], ['repos.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('repo_id', 'file_hash')
    )
    with op.batch_alter_table('xet_files', schema=None) as batch_op:
        batch_op.create_index('ix_xet_files_sha256', ['sha256'], unique=False)
        batch_op.create_index('ix_xet_files_file_hash', ['file_hash'], unique=False)
    op.create_table('xet_file_xorbs',
    sa.Column('repo_id', sa.Integer(), nullable=False),
    sa.Column('file_hash', sa.String(length=64), nullable=False),
    sa.Column('xorb_hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['repo_id'], ['repos.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('repo_id', 'file_hash', 'xorb_hash')
    )
    with op.batch_alter_table('xet_file_xorbs', schema=None) as batch_op:
        batch_op.create_index('ix_xet_file_xorbs_xorb_hash', ['xorb_hash'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('xet_file_xorbs', schema=None) as batch_op:
        batch_op.drop_index('ix_xet_file_xorbs_xorb_hash')
    op.drop_table('xet_file_xorbs')
    with op.batch_alter_table('xet_files', schema=None) as batch_op:
        batch_op.drop_index('ix_xet_files_file_hash')
        batch_op.drop_index('ix_xet_files_sha256')
    op.drop_table('xet_files')
    op.drop_table('xet_xorb_claims')
    op.drop_table('xet_xorbs')
