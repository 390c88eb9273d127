"""Detection fan-out: one claim per (model, schedule slot).

Revision ID: 0004
Revises: 0003
Create Date: 2025-01-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
# rebase: down_revision
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "detection_claims",
        sa.Column("model_id", sa.String(128), nullable=False),
        sa.Column("slot", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model_id", "slot", name="pk_detection_claims"),
    )
    op.create_index("ix_detection_claims_slot", "detection_claims", ["slot"])


def downgrade() -> None:
    op.drop_index("ix_detection_claims_slot", table_name="detection_claims")
    op.drop_table("detection_claims")
