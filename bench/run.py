"""Benchmark of the generation pipeline and the library at scale (issue 5).

    .venv/bin/python bench/run.py            # the full run (~4 minutes on 2 cores)
    .venv/bin/python bench/run.py --quick    # a smoke run with fewer repetitions (~1 minute)

What runs, all on 127.0.0.1 and in a temporary directory that is removed afterwards:

* the app with its embedded defaults, started the way ``make demo`` starts it
  (``python -m cms_media.demo``): waitress with 12 threads, a SQLite file database in WAL mode,
  filesystem storage, and the ``sqlite`` Huey queue drained by ``flask cms-media worker`` (a
  second process, 8 worker threads);
* the local OpenAI-compatible server (``cms_media.testing.openai_server``) in this process,
  with a simulated latency per image; an API key and that server's base URL are stored in the
  instance's AI settings exactly as the settings page stores them;
* the demo's content editor signed in through real HTTP requests (CSRF and htmx headers).

The five figures of the issue, each a median or ratio of repeated runs in this one run:

1. Fan-out: POST Generate (4 × 1536x1024) → the long-poll (as htmx runs it) has shown all 4
   candidates ready and the last thumbnail has been fetched, ÷ the 2 s single-image latency.
2. Overhead per image: the SDK's ``images.generate`` has returned the provider's answer →
   ``run_slot`` has committed the candidate (draft and thumbnail stored, row ``ready``, so the
   thumbnail route serves it), for a 1536x1024 PNG; ratio to the bare Pillow floor (decode +
   one WebP thumbnail of the same bytes), measured alternately in this process.
   ``run_slot`` is called in this process (same code the worker runs) so both ends can be
   timed on one clock.
3. Library at scale: 10,000 documents inserted in bulk in one folder; the first page, a page
   100 ``after`` cursors deep and a title search (a word in 25 titles, so the whole site is
   scanned), through the Flask test client and through the running waitress server.
4. Concurrency: 50 browsers press Generate (4 images, 5 s latency) together and each
   long-polls its own batch and fetches thumbnails, while a second process
   (``bench/library_load.py``) requests library pages; library p95 during the load, and a
   check that every image was made once and stored once.
5. Memory: peak RSS (``VmHWM`` after ``clear_refs``, plus 5 ms sampling) of the web and
   worker processes during a 4 × 1536x1024 job, minus their RSS just before it.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from http_browser import Browser, find_token, next_page_url  # noqa: E402

API_KEY = "sk-bench-" + "Lq4XbN2kLw9PvR4sTy6UaC8dEf1GhJ3mKo5QiW0b"  # fake; local server only
SIZE = "1536x1024"
THUMBNAIL = 400
SEARCH_WORD = "aurora"  # in exactly 25 of the 10,000 titles
DOCUMENTS = 10_000
DEEP_PAGES = 100

TARGETS = {
    "fanout": 1.10,
    "overhead": 1.5,
    "library_p95_ms": 50.0,
    "load_p95_ms": 150.0,
    "memory_mib": 150.0,
}


@dataclass(frozen=True)
class Plan:
    fanout_runs: int
    overhead_runs: int
    library_samples: int
    load_jobs: int
    load_latency: float
    memory_runs: int


FULL = Plan(
    fanout_runs=7,
    overhead_runs=25,
    library_samples=60,
    load_jobs=50,
    load_latency=5.0,
    memory_runs=3,
)
QUICK = Plan(
    fanout_runs=2,
    overhead_runs=6,
    library_samples=12,
    load_jobs=10,
    load_latency=1.0,
    memory_runs=1,
)


# -- small helpers ----------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (p95 of 60 samples is the 57th smallest)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], bool], timeout: float, what: str, step: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(step)
    raise RuntimeError(f"timed out waiting for {what}")


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM in KiB from /proc (no psutil needed)."""
    values = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, amount = line.split(":", 1)
                values[name] = int(amount.split()[0])
    return values


def reset_peak(pid: int) -> bool:
    """Reset the kernel's peak-RSS mark (Linux ≥ 4.0); False where that is not allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    with open("/proc/loadavg", encoding="ascii") as loadavg:
        return " ".join(loadavg.read().split()[:3])


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def count_files(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root)) if root.exists() else 0


# -- the environment --------------------------------------------------------------------------


def photo_like_png(width: int = 1536, height: int = 1024, noise: int = 10) -> bytes:
    """A deterministic RGB PNG that compresses like a photograph (~3 MB at 1536x1024, as GPT
    image models' PNGs are): a colour gradient with per-pixel noise."""
    import random

    from PIL import Image, ImageChops

    rng = random.Random(1536)
    base = Image.linear_gradient("L").resize((width, height))
    picture = Image.merge(
        "RGB",
        (
            base,
            base.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
            base.transpose(Image.Transpose.ROTATE_180),
        ),
    )
    grain = Image.merge(
        "RGB",
        [
            Image.frombytes("L", (width, height), rng.randbytes(width * height)).point(
                lambda v: 128 + (v - 128) * noise // 128
            )
            for _ in range(3)
        ],
    )
    out = io.BytesIO()
    ImageChops.add(picture, grain, 1.0, -128).save(out, "PNG")
    return out.getvalue()


def give_server_photo_like_pictures(server) -> str:
    """The test server draws flat gradients (a 1536x1024 PNG of ~30 KB), far cheaper to move,
    hash and decode than a real provider's image. Its picture cache (keyed by size, format,
    transparency and variant) is filled with a photo-like PNG instead, so every figure pays a
    real image's costs. Falls back to the server's own pictures if that cache changes shape."""
    import base64

    cache = getattr(server, "_image_cache", None)
    if not isinstance(cache, dict):
        return "the test server's own flat pictures"
    data = photo_like_png()
    encoded = base64.b64encode(data).decode("ascii")
    for variant in range(5):
        cache[(1536, 1024, "png", False, variant)] = encoded
    return f"photo-like {SIZE} RGB PNG of {len(data) / 1e6:.1f} MB"


class Bench:
    def __init__(self, plan: Plan, workdir: Path, *, photo_like: bool = True) -> None:
        self.plan = plan
        self.photo_like = photo_like
        self.workdir = workdir
        self.instance = workdir / "instance"
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True)
        # Every process (this one, the web server, the worker) builds the app from this.
        os.environ["CMS_MEDIA_INSTANCE_PATH"] = str(self.instance)
        os.environ["PYTHONUNBUFFERED"] = "1"
        # 50 tabs of one signed-in editor stand for 50 editors pressing Generate: the
        # per-user and per-site generation limits stay on (their cost is measured) but high.
        os.environ["CMS_MEDIA_AI_LIMIT_PER_USER"] = "100000 per minute"
        os.environ["CMS_MEDIA_AI_LIMIT_PER_SITE"] = "100000 per minute"
        self.web: subprocess.Popen | None = None
        self.worker_pid: int | None = None
        self.port = 0
        self.results: dict = {}
        self.notes: list[str] = []

    # The app in this process: seeding, direct database reads, the test client and figure 2.
    def build(self) -> None:
        from cms_media.demo import create_app
        from cms_media.demo.cli import init_database, seed_accounts
        from cms_media.testing.openai_server import OpenAICompatibleServer

        self.server = OpenAICompatibleServer(api_keys={API_KEY}, retry_after=0.01).start()
        self.app = create_app()
        with self.app.app_context():
            init_database()
            seed_accounts()
            self._configure_ai()
            self._insert_documents()
        if self.photo_like:
            self.picture_note = give_server_photo_like_pictures(self.server)
        else:
            self.picture_note = "the test server's own flat pictures"

    def _configure_ai(self) -> None:
        from sqlalchemy import select

        from cms_media.database import session
        from cms_media.demo.models import Site, User
        from cms_media.models import AiSettings

        box = self.app.extensions["cms_media"].secret_box
        instance = session().scalar(select(AiSettings).where(AiSettings.site_id.is_(None)))
        instance.base_url = self.server.base_url
        instance.api_key_encrypted = box.encrypt(API_KEY)
        instance.api_key_last4 = API_KEY[-4:]
        session().commit()
        self.site_id = str(session().scalar(select(Site.id).where(Site.slug == "harbour")))
        editor = session().scalar(select(User).where(User.email == "editor@example.com"))
        self.editor_id, self.editor_name = str(editor.id), editor.name

    def _insert_documents(self) -> None:
        """10,000 rows in one folder, in one executemany (files are not needed for listing)."""
        from sqlalchemy import insert

        from cms_media.database import session
        from cms_media.models import Document, Folder

        folder = Folder(site_id=self.site_id, parent_id=None, name="Bench 10k")
        session().add(folder)
        session().commit()
        self.folder_id = folder.id
        adjectives = ["Harbour", "Quiet", "Stormy", "Golden", "Misty", "Bright", "Old", "Blue"]
        nouns = ["boats", "lighthouse", "pier", "gulls", "nets", "market", "dunes", "cliffs"]
        start = datetime(2026, 1, 1, tzinfo=UTC)
        rows = []
        for index in range(DOCUMENTS):
            words = [adjectives[index % 8], nouns[(index // 8) % 8]]
            if index % 400 == 7:
                words.append(SEARCH_WORD)
            title = f"{' '.join(words)} {index:05d}"
            when = start + timedelta(minutes=index)
            rows.append(
                dict(
                    site_id=self.site_id,
                    folder_id=self.folder_id,
                    title=title,
                    title_key=title.lower(),
                    description="",
                    original_filename=f"photo-{index:05d}.jpg",
                    mime_type="image/jpeg",
                    byte_size=200_000 + index * 37 % 90_000,
                    width=1600,
                    height=1067,
                    checksum=f"{index:064x}",
                    storage_key=f"documents/{self.site_id}/bench/{index:05d}.jpg",
                    thumbnail_key=f"thumbnails/{self.site_id}/bench/{index:05d}.webp",
                    source="upload",
                    created_at=when,
                    created_by_id=self.editor_id,
                    created_by_name=self.editor_name,
                    updated_at=when,
                    updated_by_id=self.editor_id,
                    updated_by_name=self.editor_name,
                )
            )
        session().execute(insert(Document), rows)
        session().commit()

    # The web server and its worker, exactly as `make demo` starts them.
    def start_web(self) -> None:
        self.port = free_port()
        web_log = open(self.logs / "web.log", "wb")  # noqa: SIM115 (closed with the process)
        self.web = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cms_media.demo",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            cwd=ROOT,
            stdout=web_log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        web_log.close()

        def up() -> bool:
            if self.web.poll() is not None:
                raise RuntimeError(f"the web server exited; see {self.logs / 'web.log'}")
            with contextlib.suppress(OSError):
                return Browser("127.0.0.1", self.port, timeout=2).get("/login").status == 200
            return False

        wait_until(up, 60, "the web server")

        def worker_started() -> bool:
            text = (self.logs / "web.log").read_text(errors="replace")
            return "cms_media worker:" in text

        wait_until(worker_started, 60, "the queue worker")
        children = children_of(self.web.pid)
        if len(children) != 1:
            raise RuntimeError(f"expected one worker process, found {children}")
        self.worker_pid = children[0]
        log(f"web pid {self.web.pid} on port {self.port}, worker pid {self.worker_pid}")

    def stop(self) -> None:
        if self.web is not None and self.web.poll() is None:
            self.web.send_signal(signal.SIGINT)  # the demo then stops its worker itself
            try:
                self.web.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.web.kill()
                self.web.wait(timeout=10)
        if self.worker_pid is not None:
            with contextlib.suppress(OSError):  # still our worker (not a reused pid)?
                cmdline = Path(f"/proc/{self.worker_pid}/cmdline").read_bytes()
                if b"cms-media" in cmdline and b"worker" in cmdline:
                    os.kill(self.worker_pid, signal.SIGTERM)
        server = getattr(self, "server", None)
        if server is not None:
            server.stop()
        app = getattr(self, "app", None)
        if app is not None:
            with app.app_context():
                from cms_media.database import session

                session().remove()
                app.extensions["sqlalchemy"].engine.dispose()

    def browser(self) -> Browser:
        return Browser("127.0.0.1", self.port, timeout=120.0)

    # -- the library paths ------------------------------------------------------------------

    def library_paths(self) -> dict[str, str]:
        folder = f"/media/folders/{self.folder_id}"
        client = TestClient(self.app).login()
        path = folder
        for _ in range(DEEP_PAGES):
            answer = client.get(path)
            path = next_page_url(answer.get_data(as_text=True))
            if path is None:
                raise RuntimeError("the folder has fewer pages than expected")
        return {
            "first page": folder,
            "deep page": path,
            "title search": f"{folder}?q={SEARCH_WORD}",
        }


class TestClient:
    """The Flask test client, signed in as the editor (as tests/conftest.py does)."""

    def __init__(self, app) -> None:
        self.client = app.test_client()

    def login(self) -> TestClient:
        token = find_token(self.client.get("/login").get_data(as_text=True))
        answer = self.client.post(
            "/login",
            data={"email": "editor@example.com", "password": "editor-demo", "csrf_token": token},
        )
        if answer.status_code != 302:
            raise RuntimeError(f"test client login failed: {answer.status_code}")
        return self

    def get(self, path: str):
        return self.client.get(path)


# -- the browser's side of the AI Creator ------------------------------------------------------

BATCH = re.compile(r'id="cm-batch-(\d+)"')
SLOT = re.compile(r'<li id="cm-slot-(\d+)" class="cm-slot cm-slot-(\w+)"')
POLLER = re.compile(r'<div id="cm-poll-(\d+)" class="cm-poller"\s*hx-get="([^"]+)"')


@dataclass
class Watch:
    job_id: int = 0
    started: float = 0.0
    wall_started: float = 0.0  # time.time() at Generate, to line up with the provider's log
    post_seconds: float = 0.0
    first_ready: float | None = None
    all_visible: float | None = None
    states: dict[int, str] = field(default_factory=dict)
    polls: int = 0
    thumbnails: int = 0
    error: str | None = None

    @property
    def seconds(self) -> float:
        return (self.all_visible or math.nan) - self.started


def generate_and_watch(
    browser: Browser, prompt: str, count: int, deadline: float, *, started: float | None = None
) -> Watch:
    """Press Generate, then do what htmx does: long-poll the batch (``hx-trigger="load"``: the
    next poll starts as soon as one answers) and load each thumbnail as its candidate appears.
    Done when the poller is gone (every candidate finished) and the last thumbnail loaded."""
    import html

    watch = Watch(started=started if started is not None else time.perf_counter())
    watch.wall_started = time.time() - (time.perf_counter() - watch.started)
    answer = browser.post_form(
        "/media/ai/jobs",
        {
            "prompt": prompt,
            "count": str(count),
            "size": SIZE,
            "quality": "auto",
            "background": "auto",
            "output_format": "png",
            "folder_id": "",
        },
    )
    watch.post_seconds = answer.seconds
    if answer.status != 200:
        watch.error = f"Generate answered HTTP {answer.status}"
        return watch
    page = answer.text
    watch.job_id = int(BATCH.search(page).group(1))
    batch = page[page.index(f'id="cm-batch-{watch.job_id}"') :]
    batch = batch[: batch.index("</section>")]
    poll_url = None

    def take(fragment: str) -> None:
        nonlocal poll_url
        for slot_id, status in SLOT.findall(fragment):
            slot_id = int(slot_id)
            if status == "ready" and watch.states.get(slot_id) != "ready":
                thumb = browser.get(f"/media/ai/slots/{slot_id}/thumbnail")
                if thumb.status != 200 or thumb.headers.get("content-type") != "image/webp":
                    watch.error = f"thumbnail of slot {slot_id}: HTTP {thumb.status}"
                watch.thumbnails += 1
                if watch.first_ready is None:
                    watch.first_ready = time.perf_counter()
            watch.states[slot_id] = status
        poll_url = None
        for job_id, url in POLLER.findall(fragment):
            if int(job_id) == watch.job_id:
                poll_url = html.unescape(url)

    take(batch)
    while poll_url is not None:
        if time.perf_counter() > deadline:
            watch.error = "deadline passed with candidates still on their way"
            return watch
        answer = browser.get(poll_url, htmx=True)
        watch.polls += 1
        if answer.status != 200:
            watch.error = f"poll answered HTTP {answer.status}"
            return watch
        take(answer.text)
    watch.all_visible = time.perf_counter()
    if len(watch.states) != count or any(s != "ready" for s in watch.states.values()):
        watch.error = watch.error or f"candidates ended as {sorted(watch.states.values())}"
    return watch


# -- figure 3: the library at scale ------------------------------------------------------------


def figure_library(bench: Bench) -> None:
    paths = bench.library_paths()
    bench.paths = paths
    samples = bench.plan.library_samples
    client = TestClient(bench.app).login()
    browser = bench.browser().login()

    def via_test_client(path: str) -> float:
        started = time.perf_counter()
        answer = client.get(path)
        answer.get_data()
        seconds = time.perf_counter() - started
        assert answer.status_code == 200, (path, answer.status_code)
        return seconds

    def via_http(path: str) -> float:
        answer = browser.get(path)
        assert answer.status == 200, (path, answer.status)
        return answer.seconds

    rows = {}
    for transport, fetch in (("test client", via_test_client), ("HTTP (waitress)", via_http)):
        for path in paths.values():
            for _ in range(5):
                fetch(path)  # warm-up
        times: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(samples):
            for name, path in paths.items():
                times[name].append(fetch(path) * 1000)
        rows[transport] = {
            name: {"median": statistics.median(v), "p95": percentile(v, 95), "n": len(v)}
            for name, v in times.items()
        }
    browser.close()
    # The pages show what they should: full pages of the folder, and the 25 matching titles.
    cards = {
        name: client.get(path).get_data(as_text=True).count('<li class="cm-card">')
        for name, path in paths.items()
    }
    if cards != {"first page": 40, "deep page": 40, "title search": DOCUMENTS // 400}:
        raise RuntimeError(f"unexpected library pages: {cards} documents shown")
    bench.results["library"] = {"rows": rows, "paths": paths, "documents_shown": cards}


# -- figure 1: fan-out -------------------------------------------------------------------------


def utc_timestamp(moment: datetime) -> float:
    """SQLite hands stored UTC datetimes back without a zone."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def job_slots(bench: Bench, watch: Watch) -> list:
    from sqlalchemy import select

    from cms_media.database import session
    from cms_media.models import GenerationSlot

    with bench.app.app_context():
        slots = list(
            session().scalars(select(GenerationSlot).where(GenerationSlot.job_id == watch.job_id))
        )
        session().expunge_all()
    return slots


def figure_fanout(bench: Bench) -> None:
    latency = 2.0
    bench.server.latency = latency
    browser = bench.browser().login()
    # One unmeasured batch first: the worker's SDK client and connections get made.
    generate_and_watch(browser, "Warm-up batch", 4, time.perf_counter() + 60)
    runs = []
    for run in range(bench.plan.fanout_runs):
        time.sleep(2.0)  # let the worker's queue polling back off to its idle delay again
        watch = generate_and_watch(
            browser, f"A harbour at dawn, fan-out run {run}", 4, time.perf_counter() + 60
        )
        if watch.error:
            raise RuntimeError(f"fan-out run {run}: {watch.error}")
        # When the provider saw each of the 4 calls: the queue's pick-up delay.
        prompt = f"A harbour at dawn, fan-out run {run}"
        calls = sorted(
            r.received_at - watch.wall_started
            for r in bench.server.requests_to("/images/generations")
            if r.body.get("prompt") == prompt
        )
        # When the worker committed each candidate (its finished_at, on the same clock).
        finished = sorted(
            utc_timestamp(slot.finished_at) - watch.wall_started for slot in job_slots(bench, watch)
        )
        runs.append(
            {
                "seconds": watch.seconds,
                "first": watch.first_ready - watch.started,
                "polls": watch.polls,
                "post_s": watch.post_seconds,
                "provider_calls_at": calls,
                "finished_at": finished,
            }
        )
        log(
            f"fan-out run {run}: {watch.seconds:.3f} s ({watch.polls} polls; Generate answered "
            f"in {watch.post_seconds:.3f} s; provider called at "
            + ", ".join(f"{c:.3f}" for c in calls)
            + " s; committed at "
            + ", ".join(f"{c:.3f}" for c in finished)
            + " s)"
        )
    browser.close()
    median = statistics.median(r["seconds"] for r in runs)
    bench.results["fanout"] = {
        "latency": latency,
        "runs": runs,
        "median_s": median,
        "ratio": median / latency,
        "first_median_s": statistics.median(r["first"] for r in runs),
    }


# -- figure 5: memory --------------------------------------------------------------------------


class PeakSampler:
    """Samples VmRSS every 5 ms (a fallback where clear_refs is not allowed)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peak = {name: 0 for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], proc_status(pid)["VmRSS"])
            self._stop.wait(0.005)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def figure_memory(bench: Bench) -> None:
    bench.server.latency = 2.0
    pids = {"web": bench.web.pid, "worker": bench.worker_pid}
    browser = bench.browser().login()
    runs = []
    for run in range(bench.plan.memory_runs):
        time.sleep(2.0)
        idle = {name: proc_status(pid)["VmRSS"] for name, pid in pids.items()}
        exact = all(reset_peak(pid) for pid in pids.values())
        with PeakSampler(pids) as sampler:
            watch = generate_and_watch(
                browser, f"Memory run {run}: cliffs", 4, time.perf_counter() + 60
            )
            time.sleep(0.3)
        if watch.error:
            raise RuntimeError(f"memory run {run}: {watch.error}")
        deltas = {}
        for name, pid in pids.items():
            peak = sampler.peak[name]
            if exact:
                peak = max(peak, proc_status(pid)["VmHWM"])
            deltas[name] = (peak - idle[name]) / 1024
        runs.append(
            {
                "idle_mib": {k: v / 1024 for k, v in idle.items()},
                "delta_mib": deltas,
                "total_mib": sum(deltas.values()),
                "exact_peak": exact,
            }
        )
        log(f"memory run {run}: " + ", ".join(f"{k} +{v:.1f} MiB" for k, v in deltas.items()))
    browser.close()
    median_run = sorted(runs, key=lambda r: r["total_mib"])[len(runs) // 2]
    bench.results["memory"] = {"runs": runs, "median": median_run}


# -- figure 2: overhead per image --------------------------------------------------------------


def pillow_floor(data: bytes) -> float:
    """Decode the same bytes and encode one WebP thumbnail, nothing else."""
    from PIL import Image

    started = time.perf_counter()
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        image.thumbnail((THUMBNAIL, THUMBNAIL), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        image.save(out, "WEBP", quality=80, method=4)
    return time.perf_counter() - started


def unqueued_slot(bench: Bench, prompt: str) -> int:
    """A one-image job made directly (not queued: the worker must not take it); its slot id."""
    from cms_media.database import session
    from cms_media.models import GenerationJob, GenerationSlot, utcnow

    with bench.app.app_context():
        job = GenerationJob(
            site_id=bench.site_id,
            user_id=bench.editor_id,
            user_name=bench.editor_name,
            prompt=prompt,
            provider="openai",
            model="gpt-image-2.6-sunburst",
            size=SIZE,
            quality="auto",
            background="auto",
            output_format="png",
            image_count=1,
            expires_at=utcnow() + timedelta(hours=1),
            slots=[GenerationSlot(position=0)],
        )
        session().add(job)
        session().commit()
        return job.slots[0].id


def figure_overhead(bench: Bench) -> None:
    from openai.resources.images import Images

    from cms_media.database import session
    from cms_media.models import GenerationSlot
    from cms_media.services import generation
    from cms_media.services.documents import storage

    app = bench.app
    bench.server.latency = 0.0
    arrived: list[float] = []
    original = Images.generate

    def timed_generate(self, *args, **kwargs):
        response = original(self, *args, **kwargs)
        arrived.append(time.perf_counter())
        return response

    def new_slot() -> int:
        return unqueued_slot(bench, "Overhead per image: a pier at noon")

    # Where the time goes: the provider module's check of the bytes, then the library's
    # inspection (decode, verify, thumbnail, checksum); the rest is storing and committing.
    import cms_media.ai.providers as providers_module

    stages: dict[str, list[float]] = {"fit_to_size": [], "inspect_upload": []}

    def staged(module, name: str):
        original_function = getattr(module, name)

        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original_function(*args, **kwargs)
            finally:
                stages[name].append((time.perf_counter() - started) * 1000)

        setattr(module, name, wrapper)
        return original_function

    overheads, floors, data = [], [], None
    Images.generate = timed_generate
    unpatch = [
        (providers_module, "fit_to_size", staged(providers_module, "fit_to_size")),
        (generation, "inspect_upload", staged(generation, "inspect_upload")),
    ]
    try:
        for run in range(bench.plan.overhead_runs + 2):  # the first two warm up
            slot_id = new_slot()
            gc.collect()
            with app.app_context():
                status = generation.run_slot(slot_id)
                done = time.perf_counter()
                if status != "ready":
                    raise RuntimeError(f"overhead run {run}: slot ended {status}")
                slot = session().get(GenerationSlot, slot_id)
                if data is None:
                    data = storage().read(slot.draft_key)
            gc.collect()
            floor = pillow_floor(data)
            if run >= 2:
                overheads.append((done - arrived[-1]) * 1000)
                floors.append(floor * 1000)
    finally:
        Images.generate = original
        for module, name, function in unpatch:
            setattr(module, name, function)
    # The thumbnail is servable: the editor's browser can load it right away.
    client = TestClient(app).login()
    answer = client.get(f"/media/ai/slots/{slot_id}/thumbnail")
    if answer.status_code != 200 or answer.mimetype != "image/webp":
        raise RuntimeError(f"thumbnail not servable: {answer.status_code}")
    overhead, floor = statistics.median(overheads), statistics.median(floors)
    bench.results["overhead"] = {
        "median_ms": overhead,
        "floor_ms": floor,
        "ratio": overhead / floor,
        "image_bytes": len(data),
        "runs": len(overheads),
        "stages_ms": {name: statistics.median(v[2:]) for name, v in stages.items()},
    }


# -- figure 4: concurrency ---------------------------------------------------------------------


def figure_concurrency(bench: Bench) -> None:
    from sqlalchemy import select

    from cms_media.database import session
    from cms_media.models import GenerationSlot
    from cms_media.services.documents import storage

    plan = bench.plan
    latency = plan.load_latency
    bench.server.latency = latency
    images = plan.load_jobs * 4
    workers = int(bench.app.config["CMS_MEDIA_QUEUE_WORKERS"])
    budget = math.ceil(images / workers) * latency * 2 + 60
    drafts = bench.instance / "media" / "drafts"
    files_before = count_files(drafts)
    calls_before = len(bench.server.requests_to("/images/generations"))
    bench.server.max_in_flight = 0

    # The second process: the library, browsed throughout.
    out, ready, stop = (bench.workdir / name for name in ("load.jsonl", "load.ready", "load.stop"))
    load = subprocess.Popen(
        [
            sys.executable,
            str(BENCH / "library_load.py"),
            "--port",
            str(bench.port),
            "--paths",
            json.dumps(bench.paths),
            "--out",
            str(out),
            "--ready",
            str(ready),
            "--stop",
            str(stop),
            "--max-seconds",
            str(budget + 30),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=open(bench.logs / "load.log", "wb"),  # noqa: SIM115
    )
    try:
        wait_until(ready.exists, 60, "the library load process")
        time.sleep(1.0)  # some samples before the storm, for the record
        main = bench.browser().login()
        tabs = [bench.browser().share_session_with(main) for _ in range(plan.load_jobs)]
        for tab in tabs:
            tab.get("/login")  # open each tab's connection before the start line
        barrier = threading.Barrier(len(tabs) + 1)
        watches: list[Watch | None] = [None] * len(tabs)

        def browse(index: int) -> None:
            barrier.wait()
            try:
                watches[index] = generate_and_watch(
                    tabs[index],
                    f"Concurrency batch {index}: gulls over the market",
                    4,
                    time.perf_counter() + budget,
                )
            except Exception as exc:  # recorded and reported, never hidden
                watches[index] = Watch(error=f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=browse, args=(i,)) for i in range(len(tabs))]
        for thread in threads:
            thread.start()
        pids = {"web": bench.web.pid, "worker": bench.worker_pid}
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        barrier.wait()
        load_start = time.time()
        started = time.perf_counter()
        for thread in threads:
            thread.join(budget + 30)
        load_end = time.time()
        drained = time.perf_counter() - started
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        for tab in tabs + [main]:
            tab.close()
    finally:
        stop.write_text("stop")
        try:
            load.wait(timeout=60)
        except subprocess.TimeoutExpired:
            load.kill()
            load.wait()

    samples = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    during = [s for s in samples if load_start <= s["t"] <= load_end]
    latencies = [s["s"] * 1000 for s in during]
    errors = [s for s in during if s["status"] != 200]
    by_page = {}
    for page in bench.paths:
        values = [s["s"] * 1000 for s in during if s["page"] == page]
        by_page[page] = {"median": statistics.median(values), "p95": percentile(values, 95)}
    before = [s["s"] * 1000 for s in samples if s["t"] < load_start]

    # Every image made once and stored once.
    job_ids = [w.job_id for w in watches if w and w.job_id]
    with bench.app.app_context():
        slots = list(
            session().scalars(select(GenerationSlot).where(GenerationSlot.job_id.in_(job_ids)))
        )
        ready_slots = [s for s in slots if s.status == "ready"]
        stored = sum(
            1
            for s in ready_slots
            if storage().exists(s.draft_key) and storage().exists(s.thumbnail_key)
        )
        attempts = sorted({s.attempts for s in slots})
        distinct_drafts = len({s.draft_key for s in ready_slots})
    calls = len(bench.server.requests_to("/images/generations")) - calls_before
    new_files = count_files(drafts) - files_before
    browser_errors = [w.error for w in watches if w is None or w.error]
    bench.results["load"] = {
        "jobs": plan.load_jobs,
        "latency": latency,
        "images": images,
        "workers": workers,
        "drained_s": drained,
        "cpu_s": cpu,
        "library": {
            "n": len(latencies),
            "median": statistics.median(latencies) if latencies else math.nan,
            "p95": percentile(latencies, 95),
            "max": max(latencies) if latencies else math.nan,
            "errors": len(errors),
            "by_page": by_page,
            "idle_median": statistics.median(before) if before else math.nan,
        },
        "stored": stored,
        "ready_slots": len(ready_slots),
        "slots": len(slots),
        "distinct_drafts": distinct_drafts,
        "attempts": attempts,
        "provider_calls": calls,
        "new_draft_files": new_files,
        "max_in_flight": bench.server.max_in_flight,
        "browser_errors": browser_errors[:5],
        "browser_error_count": len(browser_errors),
        "polls": sum(w.polls for w in watches if w),
    }
    ok_count = (
        stored == images
        and distinct_drafts == images
        and calls == images
        and new_files == 2 * images
        and attempts == [1]
    )
    bench.results["load"]["all_once"] = ok_count


# -- the table ---------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def table(bench: Bench) -> str:
    r = bench.results
    lines = [
        "| # | Figure | Result | Target | |",
        "|---|---|---|---|---|",
    ]
    if "fanout" in r:
        f = r["fanout"]
        lines.append(
            f"| 1 | Fan-out: Generate → 4th of 4 candidates visible (long-poll + thumbnail), "
            f"÷ {f['latency']:g} s latency; median of {len(f['runs'])} | "
            f"**{f['ratio']:.3f}** ({f['median_s']:.3f} s; first candidate "
            f"{f['first_median_s']:.3f} s) | ≤ {TARGETS['fanout']:.2f} | "
            f"{verdict(f['ratio'] <= TARGETS['fanout'])} |"
        )
    if "overhead" in r:
        o = r["overhead"]
        st = o["stages_ms"]
        lines.append(
            f"| 2 | Overhead per image, {SIZE} PNG ({o['image_bytes'] / 1e6:.2f} MB): response "
            f"arrived → thumbnail servable; median of {o['runs']} | {o['median_ms']:.1f} ms vs "
            f"floor {o['floor_ms']:.1f} ms = **{o['ratio']:.2f}×** (provider check "
            f"{st['fit_to_size']:.1f} ms, inspect {st['inspect_upload']:.1f} ms) | "
            f"≤ {TARGETS['overhead']}× | {verdict(o['ratio'] <= TARGETS['overhead'])} |"
        )
    if "library" in r:
        for transport, pages in r["library"]["rows"].items():
            cells = "; ".join(
                f"{name} {v['median']:.1f} / **{v['p95']:.1f}**" for name, v in pages.items()
            )
            worst = max(v["p95"] for v in pages.values())
            n = next(iter(pages.values()))["n"]
            lines.append(
                f"| 3 | Library, {DOCUMENTS:,} documents, {transport}: median / p95 ms "
                f"(n={n} each) | {cells} | p95 ≤ {TARGETS['library_p95_ms']:g} ms | "
                f"{verdict(worst <= TARGETS['library_p95_ms'])} |"
            )
    if "load" in r:
        w = r["load"]
        lib = w["library"]
        ok = lib["p95"] <= TARGETS["load_p95_ms"] and w["all_once"] and not lib["errors"]
        if w["browser_error_count"]:
            ok = False
        lines.append(
            f"| 4 | Concurrency: {w['jobs']} jobs × 4 at {w['latency']:g} s, {w['workers']} "
            f"worker threads, drained in {w['drained_s']:.1f} s; library p95 during it "
            f"(n={lib['n']}) and images stored once | p95 **{lib['p95']:.1f} ms** (median "
            f"{lib['median']:.1f}, max {lib['max']:.0f}); **{w['stored']}/{w['images']}** stored, "
            f"{w['provider_calls']} provider calls, {w['new_draft_files']} files, "
            f"{w['browser_error_count']} browser errors, {lib['errors']} library errors | "
            f"≤ {TARGETS['load_p95_ms']:g} ms and {w['images']}/{w['images']} | {verdict(ok)} |"
        )
    if "memory" in r:
        m = r["memory"]["median"]
        d = m["delta_mib"]
        highest = max(run["total_mib"] for run in r["memory"]["runs"])
        lines.append(
            f"| 5 | Memory: peak RSS − idle during a 4 × {SIZE} job, web + worker; median of "
            f"{len(r['memory']['runs'])} | **{m['total_mib']:.1f} MiB** (web {d['web']:.1f} + "
            f"worker {d['worker']:.1f}; highest run {highest:.1f}; idle "
            f"{m['idle_mib']['web']:.0f} + {m['idle_mib']['worker']:.0f} MiB) | "
            f"≤ {TARGETS['memory_mib']:g} MiB | "
            f"{verdict(m['total_mib'] <= TARGETS['memory_mib'])} |"
        )
    return "\n".join(lines)


FIGURES = {
    "3": figure_library,  # first: the other figures reuse its page paths
    "1": figure_fanout,
    "5": figure_memory,
    "2": figure_overhead,
    "4": figure_concurrency,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    parser.add_argument(
        "--figures", default="1,2,3,4,5", help="comma-separated subset, e.g. 1,3 (3 always runs)"
    )
    parser.add_argument("--json", help="also write every raw figure to this file")
    parser.add_argument(
        "--server-pictures",
        action="store_true",
        help="keep the test server's flat ~30 KB pictures (diagnosis: the pipeline without "
        "a real image's decoding and transfer costs)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    wanted = set(args.figures.split(",")) | {"3"}
    workdir = Path(tempfile.mkdtemp(prefix="cms-media-bench-"))
    bench = Bench(plan, workdir, photo_like=not args.server_pictures)
    began = time.perf_counter()
    bench.load_start = load_average()
    try:
        import cms_media

        log(f"setting up in {workdir} ({'quick' if args.quick else 'full'} run)")
        log(f"cms_media from {Path(cms_media.__file__).parent}, load average {bench.load_start}")
        bench.build()
        bench.start_web()
        for number, figure in FIGURES.items():
            if number in wanted:
                log(f"figure {number}: {figure.__name__}")
                figure(bench)
    finally:
        bench.stop()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.perf_counter() - began
    bench.results["machine"] = machine()
    bench.results["load_average"] = {"start": bench.load_start, "end": load_average()}
    bench.results["elapsed_s"] = elapsed
    bench.results["quick"] = args.quick
    if args.json:
        Path(args.json).write_text(json.dumps(bench.results, indent=2, default=str))
    print()
    print(table(bench))
    print()
    print(f"Provider pictures: {bench.picture_note}.")
    print(
        f"{machine_line(bench.results['machine'])}; {elapsed:.0f} s in all; load average "
        f"{bench.results['load_average']['start']} at the start, "
        f"{bench.results['load_average']['end']} at the end."
    )
    return 0


def machine() -> dict:
    import sqlite3

    import PIL

    memory = 0
    with contextlib.suppress(OSError), open("/proc/meminfo", encoding="ascii") as info:
        memory = int(info.readline().split()[1]) // 1024
    return {
        "nproc": os.cpu_count(),
        "memory_mib": memory,
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "pillow": PIL.__version__,
    }


def machine_line(m: dict) -> str:
    return (
        f"{m['nproc']} CPUs, {m['memory_mib'] / 1024:.1f} GiB, Python {m['python']}, "
        f"SQLite {m['sqlite']}, Pillow {m['pillow']}"
    )


if __name__ == "__main__":
    sys.exit(main())
