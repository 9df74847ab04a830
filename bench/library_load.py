"""The second process of figure 4: an editor browsing the library while generation runs.

Signs in, then requests the given library pages one after another (a short pause between
them) and writes one JSON line per request: wall-clock start, seconds, status, which page. It
stops when the stop file appears or after ``--max-seconds``, whichever comes first.

Started by ``bench/run.py``; not meant to be run by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from http_browser import Browser  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--paths", required=True, help="JSON object: page name -> path")
    parser.add_argument("--out", required=True)
    parser.add_argument("--ready", required=True, help="file written once signed in and warm")
    parser.add_argument("--stop", required=True, help="stop once this file exists")
    parser.add_argument("--max-seconds", type=float, default=300.0)
    parser.add_argument("--think", type=float, default=0.05, help="pause between requests")
    args = parser.parse_args(argv)

    paths: dict[str, str] = json.loads(args.paths)
    browser = Browser("127.0.0.1", args.port, timeout=120.0).login()
    for path in paths.values():  # warm the connection and the pages
        browser.get(path)
    Path(args.ready).write_text(str(os.getpid()))
    deadline = time.monotonic() + args.max_seconds
    names = list(paths)
    index = 0
    with open(args.out, "w", encoding="utf-8") as out:
        while time.monotonic() < deadline and not os.path.exists(args.stop):
            name = names[index % len(names)]
            index += 1
            started = time.time()
            answer = browser.get(paths[name])
            record = {"t": started, "s": answer.seconds, "status": answer.status, "page": name}
            out.write(json.dumps(record) + "\n")
            out.flush()
            time.sleep(args.think)
    browser.close()


if __name__ == "__main__":
    main()
