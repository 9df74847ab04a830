"""``python -m cms_media.demo``: set up, seed and serve the demo CMS on http://127.0.0.1:5000."""

from __future__ import annotations

import argparse

from waitress import serve

from cms_media.demo import create_app
from cms_media.demo.cli import init_database, print_credentials, seed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()

    app = create_app()
    with app.app_context():
        init_database()
        print_credentials(seed())
    print(f"\nDemo CMS on http://{args.host}:{args.port}/  (Ctrl+C stops it)", flush=True)
    serve(app, host=args.host, port=args.port, threads=8)


if __name__ == "__main__":
    main()
