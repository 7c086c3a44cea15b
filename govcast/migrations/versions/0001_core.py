"""core tables

Revision ID: 0001_core
Revises: 
Create Date: 2026-11-28 02:14:51.559943
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
import publisher.orm

revision: str = '0001_core'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ('core',)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    
    op.create_table('offices',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('org_code', sa.String(length=32), nullable=False),
    sa.Column('created_at', publisher.orm.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_offices')),
    sa.UniqueConstraint('key', name=op.f('uq_offices_key'))
    )
    op.create_table('users',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=100), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('failed_logins', sa.Integer(), nullable=False),
    sa.Column('locked_until', publisher.orm.UTCDateTime(timezone=True), nullable=True),
    sa.Column('password_changed_at', publisher.orm.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', publisher.orm.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('name', name=op.f('uq_users_name'))
    )
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', publisher.orm.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('origin', sa.String(length=100), nullable=False),
    sa.Column('office_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('object_type', sa.String(length=32), nullable=False),
    sa.Column('object_id', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_audit_log_actor_id_users')),
    sa.ForeignKeyConstraint(['office_id'], ['offices.id'], name=op.f('fk_audit_log_office_id_offices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_at'), ['at'], unique=False)
        batch_op.create_index('ix_audit_log_object', ['object_type', 'object_id'], unique=False)

    op.create_table('index_serials',
    sa.Column('office_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('period', sa.String(length=6), nullable=False),
    sa.Column('last_serial', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['office_id'], ['offices.id'], name=op.f('fk_index_serials_office_id_offices')),
    sa.PrimaryKeyConstraint('office_id', 'period', name=op.f('pk_index_serials'))
    )
    op.create_table('media',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('office_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('created_at', publisher.orm.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['office_id'], ['offices.id'], name=op.f('fk_media_office_id_offices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_media'))
    )
    with op.batch_alter_table('media', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_media_sha256'), ['sha256'], unique=False)

    op.create_table('memberships',
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('office_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.CheckConstraint("role IN ('editor', 'reviewer', 'approver', 'responder', 'admin')", name=op.f('ck_memberships_role_valid')),
    sa.ForeignKeyConstraint(['office_id'], ['offices.id'], name=op.f('fk_memberships_office_id_offices')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_memberships_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'office_id', 'role', name=op.f('pk_memberships'))
    )
    op.create_table('publications',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('office_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('index_number', sa.String(length=64), nullable=True),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('title_en', sa.String(length=500), nullable=True),
    sa.Column('body_html', sa.Text(), nullable=False),
    sa.Column('body_html_en', sa.Text(), nullable=True),
    sa.Column('body_source', sa.Text(), nullable=True),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('category', sa.String(length=24), nullable=False),
    sa.Column('issuing_body', sa.String(length=200), nullable=False),
    sa.Column('document_number', sa.String(length=100), nullable=True),
    sa.Column('written_on', sa.Date(), nullable=True),
    sa.Column('subject', sa.String(length=100), nullable=True),
    sa.Column('genre', sa.String(length=50), nullable=True),
    sa.Column('audience', sa.String(length=100), nullable=True),
    sa.Column('keywords', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=True),
    sa.Column('column_key', sa.String(length=64), nullable=True),
    sa.Column('validity', sa.String(length=16), nullable=False),
    sa.Column('replaced_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('explanation_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('explanation_url', sa.String(length=1000), nullable=True),
    sa.Column('solicitation_opens_at', publisher.orm.UTCDateTime(timezone=True), nullable=True),
    sa.Column('solicitation_closes_at', publisher.orm.UTCDateTime(timezone=True), nullable=True),
    sa.Column('solicitation_basis', sa.String(length=24), nullable=True),
    sa.Column('channels', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('publish_at', publisher.orm.UTCDateTime(timezone=True), nullable=True),
    sa.Column('urgent', sa.Boolean(), nullable=False),
    sa.Column('push', sa.Boolean(), nullable=False),
    sa.Column('review_steps', sa.Integer(), nullable=False),
    sa.Column('review_step', sa.Integer(), nullable=False),
    sa.Column('rejection_reason', sa.Text(), nullable=True),
    sa.Column('imported', sa.Boolean(), nullable=False),
    sa.Column('author_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('author_label', sa.String(length=100), nullable=False),
    sa.Column('created_at', publisher.orm.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', publisher.orm.UTCDateTime(timezone=True), nullable=False),
    sa.Column('approved_at', publisher.orm.UTCDateTime(timezone=True), nullable=True),
    sa.Column('published_at', publisher.orm.UTCDateTime(timezone=True), nullable=True),
    sa.Column('withdrawn_at', publisher.orm.UTCDateTime(timezone=True), nullable=True),
    sa.Column('withdrawal_reason', sa.Text(), nullable=True),
    sa.CheckConstraint("category IN ('decision', 'implementation', 'management', 'service', 'results', 'key_area')", name=op.f('ck_publications_category_valid')),
    sa.CheckConstraint("kind IN ('disclosure', 'press_release', 'press_conference', 'solicitation', 'column_item')", name=op.f('ck_publications_kind_valid')),
    sa.CheckConstraint("state IN ('draft', 'in_review', 'scheduled', 'queued', 'published', 'withdrawn')", name=op.f('ck_publications_state_valid')),
    sa.CheckConstraint("validity IN ('in_force', 'amended', 'repealed', 'expired')", name=op.f('ck_publications_validity_valid')),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_publications_author_id_users')),
    sa.ForeignKeyConstraint(['explanation_id'], ['publications.id'], name=op.f('fk_publications_explanation_id_publications')),
    sa.ForeignKeyConstraint(['office_id'], ['offices.id'], name=op.f('fk_publications_office_id_offices')),
    sa.ForeignKeyConstraint(['replaced_by_id'], ['publications.id'], name=op.f('fk_publications_replaced_by_id_publications')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_publications')),
    sa.UniqueConstraint('index_number', name=op.f('uq_publications_index_number'))
    )
    with op.batch_alter_table('publications', schema=None) as batch_op:
        batch_op.create_index('ix_publications_office_state', ['office_id', 'state'], unique=False)
        batch_op.create_index('ix_publications_published_at', ['published_at'], unique=False)

    op.create_table('deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('publication_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('account', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('not_before', publisher.orm.UTCDateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('lease_owner', sa.String(length=100), nullable=True),
    sa.Column('lease_expires_at', publisher.orm.UTCDateTime(timezone=True), nullable=True),
    sa.Column('needs_reconcile', sa.Boolean(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_error_kind', sa.String(length=16), nullable=True),
    sa.Column('remote_id', sa.String(length=200), nullable=True),
    sa.Column('remote_url', sa.String(length=1000), nullable=True),
    sa.Column('receipt', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', publisher.orm.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', publisher.orm.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', publisher.orm.UTCDateTime(timezone=True), nullable=True),
    sa.Column('done_at', publisher.orm.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("action IN ('publish', 'push', 'update', 'retract')", name=op.f('ck_deliveries_action_valid')),
    sa.CheckConstraint("state IN ('pending', 'sending', 'done', 'dead', 'cancelled')", name=op.f('ck_deliveries_state_valid')),
    sa.ForeignKeyConstraint(['publication_id'], ['publications.id'], name=op.f('fk_deliveries_publication_id_publications')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deliveries')),
    sa.UniqueConstraint('publication_id', 'channel', 'account', 'action', 'revision', name=op.f('uq_deliveries_publication_id_channel_account_action_revision'))
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_deliveries_account_sent', ['channel', 'account', 'sent_at'], unique=False)
        batch_op.create_index('ix_deliveries_claim', ['state', 'not_before', 'priority'], unique=False)
        batch_op.create_index(batch_op.f('ix_deliveries_publication_id'), ['publication_id'], unique=False)

    op.create_table('publication_media',
    sa.Column('publication_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('media_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('alt', sa.String(length=300), nullable=False),
    sa.ForeignKeyConstraint(['media_id'], ['media.id'], name=op.f('fk_publication_media_media_id_media')),
    sa.ForeignKeyConstraint(['publication_id'], ['publications.id'], name=op.f('fk_publication_media_publication_id_publications'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('publication_id', 'media_id', name=op.f('pk_publication_media'))
    )
    op.create_table('publication_versions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('publication_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('snapshot', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('edited_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('edited_by_label', sa.String(length=100), nullable=False),
    sa.Column('edited_at', publisher.orm.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['edited_by'], ['users.id'], name=op.f('fk_publication_versions_edited_by_users')),
    sa.ForeignKeyConstraint(['publication_id'], ['publications.id'], name=op.f('fk_publication_versions_publication_id_publications'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_publication_versions')),
    sa.UniqueConstraint('publication_id', 'version', name=op.f('uq_publication_versions_publication_id_version'))
    )
    op.create_table('reviews',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('publication_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('reviewer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('decision', sa.String(length=16), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('decided_at', publisher.orm.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['publication_id'], ['publications.id'], name=op.f('fk_reviews_publication_id_publications'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['reviewer_id'], ['users.id'], name=op.f('fk_reviews_reviewer_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reviews'))
    )
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reviews_publication_id'), ['publication_id'], unique=False)

    op.create_table('website_entries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('publication_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('office_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('index_number', sa.String(length=64), nullable=False),
    sa.Column('url', sa.String(length=1000), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('published_at', publisher.orm.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', publisher.orm.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['office_id'], ['offices.id'], name=op.f('fk_website_entries_office_id_offices')),
    sa.ForeignKeyConstraint(['publication_id'], ['publications.id'], name=op.f('fk_website_entries_publication_id_publications')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_website_entries')),
    sa.UniqueConstraint('index_number', name=op.f('uq_website_entries_index_number')),
    sa.UniqueConstraint('publication_id', name=op.f('uq_website_entries_publication_id'))
    )
    with op.batch_alter_table('website_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_website_entries_office_id'), ['office_id'], unique=False)

    op.create_table('alerts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', publisher.orm.UTCDateTime(timezone=True), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('publication_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('delivery_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('acknowledged_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('acknowledged_at', publisher.orm.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['acknowledged_by'], ['users.id'], name=op.f('fk_alerts_acknowledged_by_users')),
    sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], name=op.f('fk_alerts_delivery_id_deliveries')),
    sa.ForeignKeyConstraint(['publication_id'], ['publications.id'], name=op.f('fk_alerts_publication_id_publications')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts'))
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alerts_created_at'), ['created_at'], unique=False)

    


def downgrade() -> None:
    
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alerts_created_at'))

    op.drop_table('alerts')
    with op.batch_alter_table('website_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_website_entries_office_id'))

    op.drop_table('website_entries')
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reviews_publication_id'))

    op.drop_table('reviews')
    op.drop_table('publication_versions')
    op.drop_table('publication_media')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deliveries_publication_id'))
        batch_op.drop_index('ix_deliveries_claim')
        batch_op.drop_index('ix_deliveries_account_sent')

    op.drop_table('deliveries')
    with op.batch_alter_table('publications', schema=None) as batch_op:
        batch_op.drop_index('ix_publications_published_at')
        batch_op.drop_index('ix_publications_office_state')

    op.drop_table('publications')
    op.drop_table('memberships')
    with op.batch_alter_table('media', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_media_sha256'))

    op.drop_table('media')
    op.drop_table('index_serials')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_object')
        batch_op.drop_index(batch_op.f('ix_audit_log_at'))

    op.drop_table('audit_log')
    op.drop_table('users')
    op.drop_table('offices')
    
