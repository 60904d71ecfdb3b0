"""The HTTP side of ``curate explore``: a Flask app over an :class:`~curate.explore.explorer.Explorer`.

Rules every request passes (see docs/explore.md):

- **Host check.** The ``Host`` header must name the address the server is bound to (or ``localhost``), so a
  web page elsewhere cannot reach the server through a rebound DNS name.
- **Token.** When a token is set (always, when bound to an address other than loopback), every ``/api/`` request
  carries it (``?token=`` or the ``X-Curate-Token`` header; compared in constant time). The page's HTML, JS and
  CSS (package files, no run data) load without it.
- **No paths from requests.** Static files are a fixed list shipped in the package; variants and recordings are
  names checked against the run; audio comes from the path ``recordings.parquet`` gives for that recording.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import math
import secrets
from importlib import resources
from typing import Any

from curate.explore.explorer import Explorer, NotFound
from curate.explore.table import QueryError, parse_filter

ASSETS = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "style.css": "text/css",
    "charts.js": "text/javascript",
}
TOKEN_HEADER = "X-Curate-Token"


def asset(name: str) -> bytes:
    return resources.files("curate.explore").joinpath("assets", name).read_bytes()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


def json_safe(obj: Any) -> Any:
    """JSON has no NaN or infinity: they become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def create_app(explorer: Explorer, token: str | None = None, allowed_hosts: set[str] | None = None):
    """The Flask app. ``allowed_hosts``: Host header names accepted (without port); None accepts any (tests)."""
    from flask import Flask, Response, abort, request

    app = Flask("curate.explore", static_folder=None)

    def reply(obj: Any, status: int = 200) -> Response:
        return Response(json.dumps(json_safe(obj)), status=status, mimetype="application/json")

    @app.before_request
    def _guard() -> Response | None:
        if allowed_hosts is not None:
            host = (request.host or "").rsplit(":", 1)[0].strip("[]").lower()
            if host not in allowed_hosts:
                return reply({"error": f"host {request.host!r} is not served here"}, 403)
        if token is not None and request.path.startswith("/api/"):  # the page's own code holds no run data
            given = request.args.get("token") or request.headers.get(TOKEN_HEADER) or ""
            if not hmac.compare_digest(given.encode(), token.encode()):
                return reply({"error": "a valid access token is required (the URL curate explore printed)"}, 403)
        return None

    @app.errorhandler(NotFound)
    def _not_found(e: NotFound) -> Response:
        return reply({"error": str(e)}, 404)

    @app.errorhandler(QueryError)
    @app.errorhandler(ValueError)
    def _bad(e: Exception) -> Response:
        return reply({"error": str(e)}, 400)

    @app.get("/")
    def index() -> Response:
        return Response(asset("index.html"), mimetype="text/html")

    @app.get("/assets/<name>")
    def assets(name: str) -> Response:
        if name not in ASSETS:  # a fixed list: nothing from the URL reaches the file system
            abort(404)
        return Response(asset(name), mimetype=ASSETS[name])

    @app.get("/api/overview")
    def overview() -> Response:
        return reply(explorer.overview())

    def _filters(variant: str) -> tuple:
        raw = request.args.get("filters") or "[]"
        try:
            specs = json.loads(raw)
        except json.JSONDecodeError:
            raise QueryError(f"filters: not JSON: {raw[:80]!r}") from None
        if not isinstance(specs, list):
            raise QueryError("filters: expected a list of [column, op, value]")
        if not specs:
            return ()
        schema = explorer.variant(variant).schema
        return tuple(parse_filter(s, schema) for s in specs)

    @app.get("/api/segments")
    def segments() -> Response:
        variant = request.args.get("variant", "")
        page = explorer.page(
            variant,
            _filters(variant),
            sort=request.args.get("sort") or None,
            descending=request.args.get("desc") in ("1", "true"),
            offset=int(request.args.get("offset", 0)),
            limit=int(request.args.get("limit", 50)),
        )
        return reply({"variant": variant, **page})

    @app.get("/api/histogram")
    def histogram() -> Response:
        return reply(explorer.histograms(request.args.get("column", "")))

    @app.get("/api/selection.yaml")
    def selection() -> Response:
        variant = request.args.get("variant", "")
        text, _ = explorer.selection_yaml(variant, _filters(variant))
        disposition = f'attachment; filename="selection-{variant}.yaml"'
        return Response(text, mimetype="application/x-yaml", headers={"Content-Disposition": disposition})

    @app.get("/api/recordings")
    def recordings() -> Response:
        return reply(explorer.recordings_of())

    @app.get("/api/recording")
    def recording() -> Response:
        wanted = [v for v in request.args.get("variants", "").split(",") if v] or None
        return reply(explorer.recording_view(request.args.get("rec", ""), wanted))

    @app.get("/api/clip.wav")
    def clip() -> Response:
        data = explorer.clip(request.args.get("rec", ""), float(request.args["start"]), float(request.args["end"]))
        resp = Response(data, mimetype="audio/wav")
        return resp.make_conditional(request, accept_ranges=True, complete_length=len(data))

    @app.get("/api/waveform")
    def waveform() -> Response:
        a = request.args
        return reply(explorer.waveform(a.get("rec", ""), float(a["start"]), float(a["end"]), int(a.get("n", 1000))))

    return app


class Server:
    """The app on ``host:port`` (port 0: a free one) in a thread-per-request WSGI server."""

    def __init__(self, explorer: Explorer, host: str = "127.0.0.1", port: int = 0, token: str | None = None):
        from werkzeug.serving import make_server

        if token is None and not is_loopback(host):
            token = new_token()  # another interface: never without a token
        self.host, self.token = host, token
        allowed = {"localhost", "127.0.0.1", "::1", host.lower()}
        if not is_loopback(host):
            allowed = None  # reached by whatever name the network gives it; the token guards it
        self.app = create_app(explorer, token, allowed)
        self._server = make_server(host, port, self.app, threaded=True)
        self.port = self._server.server_port

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/" + (f"?token={self.token}" if self.token else "")

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever` running in another thread, and close the socket."""
        self._server.shutdown()
        self.close()

    def close(self) -> None:
        """Close the socket (after :meth:`serve_forever` returned, e.g. on Ctrl-C)."""
        self._server.server_close()


__all__ = ["ASSETS", "Server", "asset", "create_app", "is_loopback", "json_safe", "new_token"]
