"""``python -m cms_media.demo``: set up, seed and serve the demo CMS on http://127.0.0.1:5000,
with the job queue's worker beside it."""

from __future__ import annotations

import argparse
import subprocess
import sys

from waitress import serve

from cms_media.demo import create_app
from cms_media.demo.cli import init_database, print_credentials, seed


def start_worker() -> subprocess.Popen:
    """The local worker: a second process on the same SQLite queue (survives restarts)."""
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "cms_media.demo", "cms-media", "worker"]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()

    app = create_app()
    with app.app_context():
        init_database()
        print_credentials(seed())
    worker = start_worker()
    print(f"\nDemo CMS on http://{args.host}:{args.port}/  (Ctrl+C stops it)", flush=True)
    try:
        # Each open AI Creator holds a thread in its long-poll: room for ~50 of them at once.
        serve(app, host=args.host, port=args.port, threads=64)
    finally:
        worker.terminate()
        worker.wait(timeout=20)


if __name__ == "__main__":
    main()
