"""What a site's AI Creator used: generations, images and tokens, for the site settings page.

Each function is one aggregate query. Images are counted from the slots with a grouped
subquery joined to the jobs, so no list costs a query per row and tokens (kept on the job) are
never counted once per slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Select, case, desc, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from cms_media.database import session
from cms_media.models import GenerationJob, GenerationSlot, utcnow

#: A slot whose image arrived; an expired draft still counts (it was made, then not kept).
_MADE = or_(GenerationSlot.status.in_(("ready", "saved")), GenerationSlot.checksum.isnot(None))
_KEPT = GenerationSlot.status == "saved"


@dataclass(frozen=True)
class MonthUsage:
    start: datetime
    end: datetime
    generations: int
    images_requested: int
    images_made: int
    images_kept: int
    input_tokens: int
    output_tokens: int
    total_tokens: int


@dataclass(frozen=True)
class UserUsage:
    user_id: str
    user_name: str
    generations: int
    images_made: int
    images_kept: int
    input_tokens: int
    output_tokens: int
    total_tokens: int


@dataclass(frozen=True)
class RecentGeneration:
    id: int
    user_id: str
    user_name: str
    created_at: datetime
    prompt: str
    provider: str
    model: str
    image_count: int
    images_made: int
    images_kept: int
    total_tokens: int


def month_bounds(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The calendar month (UTC) around ``now``: its first instant and the next month's."""
    now = (now or utcnow()).astimezone(UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if start.month == 12:
        return start, start.replace(year=start.year + 1, month=1)
    return start, start.replace(month=start.month + 1)


def _in_month(site_id: str, now: datetime | None) -> list[ColumnElement[bool]]:
    start, end = month_bounds(now)
    return [
        GenerationJob.site_id == site_id,
        GenerationJob.created_at >= start,
        GenerationJob.created_at < end,
    ]


def _slot_counts(job_ids: Select):
    """Images made and kept per job, for the jobs ``job_ids`` selects (joined as a derived
    table rather than ``IN``, which some databases refuse with a ``LIMIT``)."""
    jobs = job_ids.subquery()
    return (
        select(
            GenerationSlot.job_id.label("job_id"),
            func.sum(case((_MADE, 1), else_=0)).label("made"),
            func.sum(case((_KEPT, 1), else_=0)).label("kept"),
        )
        .join(jobs, jobs.c.id == GenerationSlot.job_id)
        .group_by(GenerationSlot.job_id)
        .subquery()
    )


def _totals(counts) -> list:
    return [
        func.count(GenerationJob.id),
        func.coalesce(func.sum(counts.c.made), 0),
        func.coalesce(func.sum(counts.c.kept), 0),
        func.coalesce(func.sum(GenerationJob.input_tokens), 0),
        func.coalesce(func.sum(GenerationJob.output_tokens), 0),
        func.coalesce(func.sum(GenerationJob.total_tokens), 0),
    ]


def month_usage(site_id: str, now: datetime | None = None) -> MonthUsage:
    """This calendar month's totals for a site."""
    where = _in_month(site_id, now)
    counts = _slot_counts(select(GenerationJob.id).where(*where))
    row = (
        session()
        .execute(
            select(func.coalesce(func.sum(GenerationJob.image_count), 0), *_totals(counts))
            .select_from(GenerationJob)
            .outerjoin(counts, counts.c.job_id == GenerationJob.id)
            .where(*where)
        )
        .one()
    )
    requested, generations, made, kept, input_tokens, output_tokens, total_tokens = row
    start, end = month_bounds(now)
    return MonthUsage(
        start=start,
        end=end,
        generations=generations,
        images_requested=requested,
        images_made=made,
        images_kept=kept,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=total_tokens,
    )


def usage_by_user(site_id: str, now: datetime | None = None) -> list[UserUsage]:
    """This calendar month's totals per user, the biggest token users first."""
    where = _in_month(site_id, now)
    counts = _slot_counts(select(GenerationJob.id).where(*where))
    totals = _totals(counts)
    rows = session().execute(
        select(GenerationJob.user_id, func.max(GenerationJob.user_name), *totals)
        .outerjoin(counts, counts.c.job_id == GenerationJob.id)
        .where(*where)
        .group_by(GenerationJob.user_id)
        .order_by(desc(totals[-1]), desc(totals[0]), GenerationJob.user_id)
    )
    return [UserUsage(*row) for row in rows]


def recent_generations(site_id: str, limit: int = 50) -> list[RecentGeneration]:
    """The site's latest generations, newest first, with the images made and kept of each."""
    recent_ids = (
        select(GenerationJob.id)
        .where(GenerationJob.site_id == site_id)
        .order_by(GenerationJob.created_at.desc(), GenerationJob.id.desc())
        .limit(limit)
    )
    counts = _slot_counts(recent_ids)
    rows = session().execute(
        select(
            GenerationJob.id,
            GenerationJob.user_id,
            GenerationJob.user_name,
            GenerationJob.created_at,
            GenerationJob.prompt,
            GenerationJob.provider,
            GenerationJob.model,
            GenerationJob.image_count,
            func.coalesce(counts.c.made, 0),
            func.coalesce(counts.c.kept, 0),
            GenerationJob.total_tokens,
        )
        .outerjoin(counts, counts.c.job_id == GenerationJob.id)
        .where(GenerationJob.site_id == site_id)
        .order_by(GenerationJob.created_at.desc(), GenerationJob.id.desc())
        .limit(limit)
    )
    return [RecentGeneration(*row) for row in rows]
