"""Thin views over :mod:`cms_media.services.ai_settings` and :mod:`cms_media.services.usage`.

A POST from htmx gets the settings block back (``render_block``); a plain POST is redirected to
the page (303) on success and gets the whole page, with status 400, on an error.
"""

from __future__ import annotations

from flask import abort, current_app, render_template, url_for
from htmx_flask import request
from jinja2_fragments.flask import render_block

from cms_media.access import SiteContext, site_context
from cms_media.ai.providers import DEFAULT_MODEL, MODELS
from cms_media.blueprints.settings import bp
from cms_media.blueprints.settings.forms import InstanceAiForm, SiteAiForm
from cms_media.database import session
from cms_media.host import MANAGE
from cms_media.responses import hx_redirect
from cms_media.services import ai_settings, usage
from cms_media.services.errors import ValidationError

SAVED = "Settings saved."
RECENT_LIMIT = 50


def _require_instance_admin() -> SiteContext:
    """Login and site checks first; then anyone but an instance admin sees no such page."""
    ctx = site_context()
    if not ctx.host.is_instance_admin(ctx.user):
        abort(404)
    return ctx


def _nav(ctx: SiteContext) -> dict[str, bool]:
    """Which settings pages this user may open (the pages link to each other)."""
    return {"instance": ctx.host.is_instance_admin(ctx.user), "site": ctx.can(MANAGE)}


def _render(template: str, context: dict, status: int):
    if request.htmx and request.method == "POST":
        return render_block(template, "settings", **context), status
    return render_template(template, **context), status


def _save(save) -> str | None:
    """Run ``save``; a service's message (never containing a key) comes back as the error."""
    try:
        save()
    except ValidationError as exc:
        # The service may have changed the row before it refused; none of that may show.
        session().rollback()
        return str(exc)
    return None


@bp.route("/ai", methods=["GET", "POST"])
def instance_ai():
    ctx = _require_instance_admin()
    if request.method == "POST":
        form = InstanceAiForm()
    else:
        form = InstanceAiForm(data=_instance_data(ai_settings.instance_settings()))
    notice, error = (SAVED if request.args.get("saved") else None), None
    if form.validate_on_submit():
        error = _save(
            lambda: ai_settings.save_instance_settings(
                ctx.user_name,
                enabled=form.enabled.data,
                api_key=form.api_key.data or "",
                remove_key=form.remove_key.data,
                model=form.model.data,
                base_url=form.base_url.data or "",
                organization=form.organization.data or "",
                project=form.project.data or "",
            )
        )
        if error is None:
            if not request.htmx:
                return hx_redirect(url_for(".instance_ai", saved=1))
            notice = SAVED
            saved = ai_settings.instance_settings()
            form = InstanceAiForm(formdata=None, data=_instance_data(saved))
    failed = request.method == "POST" and (error is not None or bool(form.errors))
    row = ai_settings.instance_settings()
    context = dict(
        ctx=ctx,
        nav=_nav(ctx),
        form=form,
        row=row,
        masked=ai_settings.masked,
        sandbox=bool(current_app.config["CMS_MEDIA_AI_SANDBOX"]),
        retired_model=row.model if row.model and row.model not in MODELS else None,
        notice=None if failed else notice,
        error=error,
    )
    return _render("cms_media/settings/instance_ai.html", context, 400 if failed else 200)


def _instance_data(row) -> dict:
    return {
        "enabled": bool(row.enabled),
        "model": row.model if row.model in MODELS else DEFAULT_MODEL,
        "base_url": row.base_url or "",
        "organization": row.organization or "",
        "project": row.project or "",
    }


@bp.route("/site/ai", methods=["GET", "POST"])
def site_ai():
    ctx = site_context()
    ctx.require(MANAGE)
    if request.method == "POST":
        form = SiteAiForm()
    else:
        form = SiteAiForm(data={"enabled": bool(ai_settings.site_settings(ctx.site_id).enabled)})
    notice, error = (SAVED if request.args.get("saved") else None), None
    if form.validate_on_submit():
        error = _save(
            lambda: ai_settings.save_site_settings(
                ctx,
                enabled=form.enabled.data,
                api_key=form.api_key.data or "",
                remove_key=form.remove_key.data,
            )
        )
        if error is None:
            if not request.htmx:
                return hx_redirect(url_for(".site_ai", saved=1))
            notice = SAVED
            form = SiteAiForm(
                formdata=None,
                data={"enabled": bool(ai_settings.site_settings(ctx.site_id).enabled)},
            )
    failed = request.method == "POST" and (error is not None or bool(form.errors))
    context = dict(
        ctx=ctx,
        nav=_nav(ctx),
        form=form,
        row=ai_settings.site_settings(ctx.site_id),
        instance=ai_settings.instance_settings(),
        access=ai_settings.resolve_access(ctx.site_id),
        site_name=ctx.host.site_name(ctx.site_id),
        masked=ai_settings.masked,
        notice=None if failed else notice,
        error=error,
    )
    if not (request.htmx and request.method == "POST"):
        # The usage report is below the form and not part of the block a save sends back.
        context.update(
            month=usage.month_usage(ctx.site_id),
            by_user=usage.usage_by_user(ctx.site_id),
            recent=usage.recent_generations(ctx.site_id, limit=RECENT_LIMIT),
            recent_limit=RECENT_LIMIT,
        )
    return _render("cms_media/settings/site_ai.html", context, 400 if failed else 200)
