"""A minimal browser for the benchmark: one keep-alive HTTP/1.1 connection to 127.0.0.1, a
cookie jar, the CSRF token, and htmx headers. Standard library only, so the client adds as
little as possible to what is measured (and nothing has to be installed)."""

from __future__ import annotations

import html
import http.client
import re
import time
import urllib.parse
from http.cookies import SimpleCookie

CSRF_PATTERN = re.compile(
    r'"X-CSRFToken": "([^"]+)"|name="csrf_token" type="hidden" value="([^"]+)"'
)
EDITOR = ("editor@example.com", "editor-demo")  # the demo's seeded content editor


class Response:
    __slots__ = ("status", "headers", "body", "seconds")

    def __init__(self, status: int, headers: dict[str, str], body: bytes, seconds: float):
        self.status, self.headers, self.body, self.seconds = status, headers, body, seconds

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class Browser:
    """Not thread-safe: one per thread (a browser tab has its own connection anyway)."""

    def __init__(self, host: str, port: int, timeout: float = 60.0) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the benchmark only talks to loopback")
        self.host, self.port, self.timeout = host, port, timeout
        self.cookies: dict[str, str] = {}
        self.csrf: str | None = None
        self._conn: http.client.HTTPConnection | None = None

    # -- transport -------------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> Response:
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in (1, 2):  # one reconnect if the server closed an idle keep-alive socket
            conn = self._connection()
            started = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=headers)
                raw = conn.getresponse()
                data = raw.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt == 2:
                    raise
                continue
            seconds = time.perf_counter() - started
            break
        for name, value in raw.getheaders():
            if name.lower() == "set-cookie":
                jar = SimpleCookie()
                jar.load(value)
                for key, morsel in jar.items():
                    if morsel.value:
                        self.cookies[key] = morsel.value
                    else:
                        self.cookies.pop(key, None)
        if raw.getheader("Connection", "").lower() == "close":
            self.close()
        return Response(raw.status, {k.lower(): v for k, v in raw.getheaders()}, data, seconds)

    def get(self, path: str, *, htmx: bool = False) -> Response:
        return self.request("GET", path, headers={"HX-Request": "true"} if htmx else None)

    def post_form(self, path: str, fields: dict, *, htmx: bool = True) -> Response:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if htmx:
            headers["HX-Request"] = "true"
            headers["X-CSRFToken"] = self.token()
        body = urllib.parse.urlencode(fields).encode()
        return self.request("POST", path, body=body, headers=headers)

    # -- the demo's session ----------------------------------------------------------------

    def token(self) -> str:
        if self.csrf is None:
            self.csrf = find_token(self.get("/login").text)
        return self.csrf

    def login(self, email: str = EDITOR[0], password: str = EDITOR[1]) -> Browser:
        token = find_token(self.get("/login").text)
        answer = self.post_form(
            "/login", {"email": email, "password": password, "csrf_token": token}, htmx=False
        )
        if answer.status != 302:
            raise RuntimeError(f"login failed: HTTP {answer.status}")
        self.csrf = None  # the session was renewed at login
        self.token()
        return self

    def share_session_with(self, other: Browser) -> Browser:
        """Another tab of the same signed-in user (same cookies and CSRF token)."""
        self.cookies = dict(other.cookies)
        self.csrf = other.csrf
        return self


def find_token(page: str) -> str:
    match = CSRF_PATTERN.search(page)
    if not match:
        raise RuntimeError("no CSRF token on the page")
    return match.group(1) or match.group(2)


def next_page_url(page: str) -> str | None:
    """The library's "Next ›" link."""
    match = re.search(r'rel="next" href="([^"]+)"', page)
    return html.unescape(match.group(1)) if match else None
