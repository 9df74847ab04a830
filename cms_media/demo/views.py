"""The demo CMS's own pages: sign in and out, the dashboard, the site switcher."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import EmailField, HiddenField, PasswordField
from wtforms.validators import DataRequired

from cms_media.demo.host import role_in, sites_for
from cms_media.demo.models import ROLE_LABELS, User, db

bp = Blueprint("demo", __name__, template_folder="templates")


class LoginForm(FlaskForm):
    email = EmailField("E-mail", validators=[DataRequired("Enter your e-mail address.")])
    password = PasswordField("Password", validators=[DataRequired("Enter your password.")])
    next = HiddenField()


class SwitchSiteForm(FlaskForm):
    site_id = HiddenField(validators=[DataRequired()])


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never redirect to another host after login."""
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and not urlsplit(target).netloc
    ):
        return target
    return url_for("demo.home")


@bp.app_context_processor
def demo_globals():
    if not current_user.is_authenticated:
        return {}
    from cms_media.demo import media

    site_id = media.host.current_site_id()
    return {
        "demo_sites": sites_for(current_user),
        "demo_site_id": site_id,
        "demo_role": "Instance administrator"
        if current_user.is_instance_admin
        else ROLE_LABELS.get(role_in(current_user, site_id or "") or "", "No access"),
        "switch_site_form": SwitchSiteForm(formdata=None),
    }


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        user = db.session.scalar(select(User).where(User.email == form.email.data.strip().lower()))
        if user is not None and user.check_password(form.password.data):
            session.clear()
            login_user(user)
            return redirect(_safe_next(form.next.data))
        form.password.errors.append("That e-mail and password do not match a user.")
    status = 400 if request.method == "POST" else 200
    return render_template("demo/login.html", form=form), status


@bp.post("/logout")
@login_required
def logout():
    logout_user()
    session.clear()
    return redirect(url_for("demo.login"))


@bp.get("/")
@login_required
def home():
    return render_template("demo/home.html")


@bp.post("/switch-site")
@login_required
def switch_site():
    form = SwitchSiteForm()
    if not form.validate_on_submit():
        abort(400)
    allowed = {str(site.id) for site in sites_for(current_user)}
    if form.site_id.data not in allowed:
        abort(404)
    session["site_id"] = form.site_id.data
    flash("Switched site.")
    return redirect(_safe_next(request.form.get("next")))
