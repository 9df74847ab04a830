"""Real-browser fixtures: a live demo server in a thread and Debian's Chromium via Playwright.

Where no Chromium is installed the browser tests are skipped, and the end of the run says so
plainly. With ``CMS_MEDIA_REQUIRE_BROWSER=1`` (set by ``.ci/run``) a missing browser, a
browser that does not start, or any skipped browser test fails the run instead.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, got_request_exception
from werkzeug.serving import make_server

CHROMIUM = os.environ.get("CMS_MEDIA_CHROMIUM") or "/usr/lib/chromium/chromium"
# The machine's closed network refuses Chromium's background connections; don't make them.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--no-first-run",
]
REQUIRE_ENV = "CMS_MEDIA_REQUIRE_BROWSER"
VIEWPORT = {"width": 1280, "height": 800}
DEFAULT_TIMEOUT_MS = 5_000


def browser_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip() in ("1", "true", "yes")


# -- live server --------------------------------------------------------------------------


@dataclass
class LiveServer:
    """A demo app served on 127.0.0.1 from a thread, with a file-based SQLite database."""

    url: str
    app: Flask
    # Exceptions the app raised while serving; a test fails at teardown when there are any.
    errors: list[str] = field(default_factory=list)

    def site_ids(self) -> dict[str, str]:
        """Site ids by slug (``harbour``, ``alpine``)."""
        from cms_media.demo.models import Site, db

        with self.app.app_context():
            return {site.slug: str(site.id) for site in db.session.scalars(db.select(Site))}


@contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    """Set one environment variable for the duration of the block, then restore it."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def create_live_app(root: Path, **config: Any) -> Flask:
    """The demo app with its instance, database and media under ``root`` (not seeded)."""
    from cms_media.demo import create_app

    root.mkdir(parents=True, exist_ok=True)
    # create_app reads the instance path from the environment only; setting it just around
    # the call keeps the repository's instance/config.py out of the test app.
    with _environ("CMS_MEDIA_INSTANCE_PATH", str(root / "instance")):
        return create_app(
            {
                "TESTING": True,
                "SECRET_KEY": "browser-test-secret",
                # A file, not :memory:, because requests are served from other threads.
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{root / 'live.db'}",
                "CMS_MEDIA_STORAGE_ROOT": str(root / "media"),
                **config,
            }
        )


def build_live_app(root: Path, *, samples: bool = True, **config: Any) -> Flask:
    """:func:`create_live_app`, then the tables, demo accounts and (optionally) samples."""
    from cms_media.demo.cli import init_database, seed_accounts, seed_samples

    app = create_live_app(root, **config)
    with app.app_context():
        init_database()
        sites, _credentials = seed_accounts()
        if samples:
            seed_samples(sites)
    return app


def dispose_app(app: Flask) -> None:
    from cms_media.demo.models import db

    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """Serve ``app`` on a free loopback port; yields the base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},  # how long shutdown() waits
        name="cms-media-live-server",
        daemon=True,
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_template(tmp_path_factory) -> Path:
    """A seeded instance (database and media files), built once; each live server copies it."""
    root = tmp_path_factory.mktemp("live-template")
    dispose_app(build_live_app(root))
    return root


@pytest.fixture
def live_server(tmp_path, live_template) -> Iterator[LiveServer]:
    """A seeded demo app (accounts and sample images) served over HTTP on 127.0.0.1."""
    root = tmp_path / "live"
    shutil.copytree(live_template, root)
    app = create_live_app(root)
    errors: list[str] = []

    def record(sender, exception, **_extra):
        errors.append(f"{type(exception).__name__}: {exception}")

    got_request_exception.connect(record, app)
    try:
        with serve(app) as url:
            server = LiveServer(url=url, app=app, errors=errors)
            yield server
    finally:
        got_request_exception.disconnect(record, app)
        dispose_app(app)
    if errors:
        pytest.fail("The live server raised:\n  " + "\n  ".join(errors), pytrace=False)


# -- live server with the AI Creator's job queue -----------------------------------------


@dataclass(frozen=True)
class AiServerOptions:
    """How ``ai_live_server`` runs the AI Creator. Override the ``ai_server_options`` fixture
    in a test module to change them.

    ``sandbox_stagger`` adds ``stagger × position`` seconds before the sandbox's own delay, so
    the candidates of a batch finish one after another, as real images do.
    """

    sandbox_delay: float = 0.6
    sandbox_stagger: float = 0.35
    poll_seconds: float = 5.0
    workers: int = 8


@pytest.fixture
def ai_server_options() -> AiServerOptions:
    return AiServerOptions()


@contextmanager
def embedded_consumer(app: Flask, workers: int, errors: list[str]) -> Iterator[Any]:
    """The app's Huey consumer in threads of this process; stopped and joined afterwards.

    A task that raises is added to ``errors`` (the worker only logs it).
    """
    from huey.signals import SIGNAL_ERROR

    queue = app.extensions["cms_media"].queue

    def task_failed(signal, task, exc=None, *_args, **_kwargs):
        errors.append(f"queue task {task.name}{task.args}: {type(exc).__name__}: {exc}")

    queue.huey.signal(SIGNAL_ERROR)(task_failed)
    consumer = queue.consumer(workers=workers)
    consumer.start()
    threads = [thread for _, thread in consumer.worker_threads] + [consumer.scheduler]
    try:
        yield consumer
    finally:
        consumer.stop(graceful=True)  # each worker finishes its task, then every thread ends
        queue.huey.disconnect_signal(task_failed, SIGNAL_ERROR)
        alive = [thread.name for thread in threads if thread.is_alive()]
        if alive:
            errors.append(f"queue threads still running after stop: {alive}")


def _stagger_sandbox(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    from cms_media.ai.providers import SandboxImageProvider

    generate = SandboxImageProvider.generate

    def staggered(self, request):
        time.sleep(seconds * (request.variation % 10))  # variation: position (+10 a retry)
        return generate(self, request)

    monkeypatch.setattr(SandboxImageProvider, "generate", staggered)


@pytest.fixture
def ai_live_server(
    tmp_path, live_template, ai_server_options, monkeypatch
) -> Iterator[LiveServer]:
    """Like ``live_server``, with the AI Creator's queue in memory and an embedded consumer
    (``workers`` threads), a slowed-down sandbox and a short long-poll.

    A test module uses it for its ``page`` by overriding ``live_server``::

        @pytest.fixture
        def live_server(ai_live_server):
            return ai_live_server
    """
    options = ai_server_options
    if options.sandbox_stagger:
        _stagger_sandbox(monkeypatch, options.sandbox_stagger)
    root = tmp_path / "live-ai"
    shutil.copytree(live_template, root)
    app = create_live_app(
        root,
        CMS_MEDIA_QUEUE="memory",
        CMS_MEDIA_QUEUE_WORKERS=options.workers,
        CMS_MEDIA_AI_FEATURE=True,
        CMS_MEDIA_AI_SANDBOX=True,
        CMS_MEDIA_AI_SANDBOX_DELAY=options.sandbox_delay,
        CMS_MEDIA_AI_POLL_SECONDS=options.poll_seconds,
    )
    errors: list[str] = []

    def record(sender, exception, **_extra):
        errors.append(f"{type(exception).__name__}: {exception}")

    got_request_exception.connect(record, app)
    try:
        with embedded_consumer(app, options.workers, errors), serve(app) as url:
            yield LiveServer(url=url, app=app, errors=errors)
    finally:
        got_request_exception.disconnect(record, app)
        dispose_app(app)
    if errors:
        pytest.fail("The live server or its queue raised:\n  " + "\n  ".join(errors), pytrace=False)


# -- browser ------------------------------------------------------------------------------


def _unavailable(reason: str) -> None:
    """Skip, or fail where a browser is required (CI)."""
    if browser_required():
        pytest.fail(f"{reason} — and {REQUIRE_ENV}=1 requires browser tests to run", pytrace=False)
    pytest.skip(f"browser tests skipped: {reason}")


def launch_chromium(playwright) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the whole run."""
    if not Path(CHROMIUM).is_file():
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (make install)")
    playwright = sync_playwright().start()
    failure = None
    try:
        instance = launch_chromium(playwright)
    except Exception as exc:  # any launch failure: missing libraries, crash, timeout
        text = str(exc).strip()
        failure = text.splitlines()[0] if text else type(exc).__name__
    if failure is not None:
        playwright.stop()
        _unavailable(f"Chromium at {CHROMIUM} did not start ({failure})")
    try:
        yield instance
    finally:
        instance.close()
        playwright.stop()


class BrowserErrors:
    """What went wrong in the page: script errors, console errors, JS dialogs, 5xx answers.

    The ``page`` fixture fails the test at teardown when anything was recorded. A test that
    expects, say, a 404 resource in the console calls ``allow_console(r"status of 404")``.
    """

    def __init__(self) -> None:
        self.page_errors: list[str] = []
        self.console_errors: list[str] = []
        self.dialogs: list[str] = []
        self.server_errors: list[str] = []
        # Browsers ask for /favicon.ico on their own; the demo host has none.
        self._allowed: list[re.Pattern[str]] = [re.compile(r"/favicon\.ico\)$")]

    def allow_console(self, pattern: str) -> None:
        """Accept console errors matching ``pattern`` (searched in "message (url)")."""
        self._allowed.append(re.compile(pattern))

    def on_console(self, message) -> None:
        if message.type != "error":
            return
        text = f"{message.text} ({(message.location or {}).get('url') or '?'})"
        if not any(pattern.search(text) for pattern in self._allowed):
            self.console_errors.append(text)

    def on_page_error(self, error) -> None:
        self.page_errors.append(str(error))

    def on_dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def on_response(self, response) -> None:
        if response.status >= 500:
            self.server_errors.append(f"{response.status} {response.request.method} {response.url}")

    def problems(self) -> list[str]:
        return (
            [f"page error: {e}" for e in self.page_errors]
            + [f"console error: {e}" for e in self.console_errors]
            + [f"unexpected JavaScript dialog: {e}" for e in self.dialogs]
            + [f"server error: {e}" for e in self.server_errors]
        )


@pytest.fixture
def browser_errors() -> BrowserErrors:
    return BrowserErrors()


@pytest.fixture
def page(browser, live_server, browser_errors) -> Iterator[Any]:
    """A fresh browser context and page (own cookies) with ``base_url`` at the live server.

    Depends on ``live_server`` so the page is closed before the server stops.
    """
    context = browser.new_context(viewport=VIEWPORT, base_url=live_server.url)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    tab = context.new_page()
    tab.on("console", browser_errors.on_console)
    tab.on("pageerror", browser_errors.on_page_error)
    tab.on("dialog", browser_errors.on_dialog)
    tab.on("response", browser_errors.on_response)
    try:
        yield tab
    finally:
        context.close()
    problems = browser_errors.problems()
    if problems:
        pytest.fail("The page reported:\n  " + "\n  ".join(problems), pytrace=False)


def login(page, live_server: LiveServer, email: str, password: str) -> None:
    """Sign in through the demo's login form and wait for the dashboard."""
    page.goto(f"{live_server.url}/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)


# -- reporting ----------------------------------------------------------------------------


def _uses_browser(item: pytest.Item) -> bool:
    return "browser" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(config, items) -> None:
    # A test that drives the browser is a browser test even if someone forgot the marker, so
    # `-m "not browser"` and the skip notice below always see it.
    for item in items:
        if _uses_browser(item) and item.get_closest_marker("browser") is None:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if (
        browser_required()
        and report.skipped
        and item.get_closest_marker("browser") is not None
        and not hasattr(report, "wasxfail")
    ):
        report.outcome = "failed"
        report.longrepr = (
            f"browser test skipped although {REQUIRE_ENV}=1: {_skip_reason(report)}"
        )


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return reason.removeprefix("Skipped: ")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    # A wrapper, so the note comes last, after pytest's own short summary.
    result = yield
    _note_skipped_browser_tests(terminalreporter)
    return result


def _note_skipped_browser_tests(terminalreporter) -> None:
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if "browser" in getattr(report, "keywords", {})
    ]
    reasons = Counter(_skip_reason(report) for report in skipped)
    for reason, count in reasons.items():
        were = "test was" if count == 1 else "tests were"
        reason = reason.removeprefix("browser tests skipped: ")
        terminalreporter.write_line(
            f"NOTE: {count} browser {were} skipped: {reason}", yellow=True, bold=True
        )
