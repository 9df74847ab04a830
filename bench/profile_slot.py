r"""Profile figure 2's path (``run_slot`` for one 1536x1024 PNG) with pyinstrument.

pyinstrument is not a project dependency; install it into a venv of its own and point this
script at that venv's site-packages (same Python version as .venv)::

    python3 -m venv /tmp/profvenv && /tmp/profvenv/bin/pip install pyinstrument py-spy
    .venv/bin/python bench/profile_slot.py \
        --site-packages /tmp/profvenv/lib/python3.11/site-packages

It builds the same environment as ``bench/run.py`` (temporary instance, local OpenAI-compatible
server without latency, photo-like provider pictures), runs ``run_slot`` a few times to warm
up, then profiles ``--runs`` more and prints pyinstrument's text report.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site-packages", help="where pyinstrument is installed")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--server-pictures", action="store_true")
    args = parser.parse_args(argv)
    if args.site_packages:
        sys.path.append(args.site_packages)
    from pyinstrument import Profiler

    workdir = Path(tempfile.mkdtemp(prefix="cms-media-profile-"))
    bench = run.Bench(run.QUICK, workdir, photo_like=not args.server_pictures)
    try:
        bench.build()
        bench.server.latency = 0.0
        from cms_media.services import generation

        app = bench.app

        def new_slot() -> int:
            return run.unqueued_slot(bench, "Profile: a pier at noon")

        for slot_id in [new_slot() for _ in range(3)]:
            with app.app_context():
                generation.run_slot(slot_id)
        slot_ids = [new_slot() for _ in range(args.runs)]
        profiler = Profiler(interval=0.0005)
        profiler.start()
        for slot_id in slot_ids:
            with app.app_context():
                generation.run_slot(slot_id)
        profiler.stop()
        print(f"{args.runs} × run_slot, {bench.picture_note}")
        print(profiler.output_text(unicode=True, color=False))
    finally:
        bench.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
