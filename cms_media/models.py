"""The plugin's tables. They live on their own metadata so a host's ``db.create_all`` and
migrations never touch them; the host's Flask-SQLAlchemy session reads and writes them.

Sites and users belong to the host: they are stored here as opaque string ids (plus the
user's display name at the time, so history stays readable if the host renames people).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Folder(Base):
    __tablename__ = "cms_media_folder"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[str] = mapped_column(String(64))
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("cms_media_folder.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by_id: Mapped[str | None] = mapped_column(String(64))

    parent: Mapped[Folder | None] = relationship(remote_side=[id])

    __table_args__ = (
        Index("ix_cms_media_folder_site_parent_name", "site_id", "parent_id", "name"),
    )


class Document(Base):
    __tablename__ = "cms_media_document"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[str] = mapped_column(String(64))
    folder_id: Mapped[int | None] = mapped_column(
        ForeignKey("cms_media_folder.id", ondelete="CASCADE")
    )
    title: Mapped[str] = mapped_column(String(255))
    # Lower-cased title: the sort and search key, indexed, so pages stay fast at any size.
    title_key: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    original_filename: Mapped[str] = mapped_column(String(255))
    mime_type: Mapped[str] = mapped_column(String(100))
    byte_size: Mapped[int] = mapped_column(Integer)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    checksum: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(255))
    thumbnail_key: Mapped[str | None] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(16), default="upload")
    generation: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by_id: Mapped[str | None] = mapped_column(String(64))
    created_by_name: Mapped[str] = mapped_column(String(255), default="")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    updated_by_id: Mapped[str | None] = mapped_column(String(64))
    updated_by_name: Mapped[str] = mapped_column(String(255), default="")

    folder: Mapped[Folder | None] = relationship()

    __table_args__ = (
        Index("ix_cms_media_document_by_title", "site_id", "folder_id", "title_key", "id"),
        Index("ix_cms_media_document_by_created", "site_id", "folder_id", "created_at", "id"),
        Index("ix_cms_media_document_by_size", "site_id", "folder_id", "byte_size", "id"),
        Index("ix_cms_media_document_site_title", "site_id", "title_key", "id"),
    )

    @property
    def is_image(self) -> bool:
        return self.mime_type.startswith("image/")

    @property
    def is_ai_generated(self) -> bool:
        return self.source == "ai"


class AiSettings(Base):
    """AI Creator settings: one row for the instance (``site_id`` NULL), one per site that
    changed anything. Keys are stored encrypted; only their last four characters in clear."""

    __tablename__ = "cms_media_ai_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    enabled: Mapped[bool] = mapped_column(default=True)
    api_key_encrypted: Mapped[str | None] = mapped_column(Text)
    api_key_last4: Mapped[str | None] = mapped_column(String(4))
    model: Mapped[str | None] = mapped_column(String(64))
    base_url: Mapped[str | None] = mapped_column(String(500))
    organization: Mapped[str | None] = mapped_column(String(100))
    project: Mapped[str | None] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    updated_by_name: Mapped[str] = mapped_column(String(255), default="")


class GenerationJob(Base):
    """One press of Generate: a batch of candidate images for one prompt."""

    __tablename__ = "cms_media_generation_job"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[str] = mapped_column(String(64))
    folder_id: Mapped[int | None] = mapped_column(
        ForeignKey("cms_media_folder.id", ondelete="SET NULL")
    )
    user_id: Mapped[str] = mapped_column(String(64))
    user_name: Mapped[str] = mapped_column(String(255), default="")
    prompt: Mapped[str] = mapped_column(Text)
    provider: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(64))
    size: Mapped[str] = mapped_column(String(16))
    quality: Mapped[str] = mapped_column(String(16))
    background: Mapped[str] = mapped_column(String(16))
    output_format: Mapped[str] = mapped_column(String(8))
    image_count: Mapped[int] = mapped_column(Integer)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    total_tokens: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    slots: Mapped[list[GenerationSlot]] = relationship(
        back_populates="job", order_by="GenerationSlot.position", cascade="all, delete-orphan"
    )

    @property
    def version_signature(self) -> str:
        """What the browser has seen ("slot:version,…"), for the long-poll to compare with."""
        return ",".join(f"{slot.id}:{slot.version}" for slot in self.slots)

    __table_args__ = (
        Index("ix_cms_media_generation_job_site_created", "site_id", "created_at"),
        Index("ix_cms_media_generation_job_user", "site_id", "user_id", "created_at"),
    )


class GenerationSlot(Base):
    """One candidate image of a job, with its own state so each arrives (or fails) alone.

    ``pending`` → ``running`` → ``ready`` (draft stored) → ``saved`` (a document), or
    ``failed`` (with a message and a Retry), or ``expired`` (draft removed unsaved).
    """

    __tablename__ = "cms_media_generation_slot"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(
        ForeignKey("cms_media_generation_job.id", ondelete="CASCADE")
    )
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    draft_key: Mapped[str | None] = mapped_column(String(255))
    thumbnail_key: Mapped[str | None] = mapped_column(String(255))
    mime_type: Mapped[str | None] = mapped_column(String(100))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    byte_size: Mapped[int | None] = mapped_column(Integer)
    checksum: Mapped[str | None] = mapped_column(String(64))
    revised_prompt: Mapped[str | None] = mapped_column(Text)
    # What the provider billed for this candidate (the job keeps the batch's totals).
    input_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    output_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    total_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(Text)
    admin_message: Mapped[str | None] = mapped_column(Text)
    # Set once, by the database's unique constraint: a slot becomes one document at most.
    document_id: Mapped[int | None] = mapped_column(
        ForeignKey("cms_media_document.id", ondelete="SET NULL"), unique=True
    )
    version: Mapped[int] = mapped_column(Integer, default=0)

    job: Mapped[GenerationJob] = relationship(back_populates="slots")

    __table_args__ = (
        UniqueConstraint("job_id", "position"),
        Index("ix_cms_media_generation_slot_status", "status", "started_at"),
    )

    @property
    def in_progress(self) -> bool:
        return self.status in ("pending", "running")
