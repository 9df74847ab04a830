"""Take docs/screenshot.png: the seeded demo library, signed in as the editor, in Chromium.

    .venv/bin/python scripts/screenshot.py [--out docs/screenshot.png] [--detail detail.png]

Starts the demo on a free loopback port with a throw-away database, like the browser tests.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from tests.browser_fixtures import (  # noqa: E402
    VIEWPORT,
    LiveServer,
    build_live_app,
    dispose_app,
    launch_chromium,
    login,
    serve,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    parser.add_argument("--detail", type=Path, help="also save a document's detail page here")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request

    with tempfile.TemporaryDirectory(prefix="cms-media-shot-") as tmp:
        app = build_live_app(Path(tmp))
        try:
            with serve(app) as url, sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                try:
                    page = browser.new_page(viewport=VIEWPORT)
                    login(page, LiveServer(url=url, app=app), "editor@example.com", "editor-demo")
                    page.goto(f"{url}/media/")
                    page.locator(".cm-folder-card a", has_text="Photos").click()
                    thumbnails = page.locator("#cm-results .cm-card img")
                    expect(thumbnails.first).to_be_visible()
                    page.wait_for_function(
                        "() => [...document.querySelectorAll('#cm-results .cm-card img')]"
                        ".every(i => i.complete && i.naturalWidth > 0)"
                    )
                    if args.detail:
                        library_url = page.url
                        page.locator("#cm-results .cm-card a").first.click()
                        page.wait_for_function("document.querySelector('.cm-preview img').complete")
                        args.detail.parent.mkdir(parents=True, exist_ok=True)
                        page.screenshot(path=str(args.detail))
                        page.goto(library_url)
                        page.wait_for_load_state("networkidle")
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(args.out))
                finally:
                    browser.close()
        finally:
            dispose_app(app)
    print(f"Saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
