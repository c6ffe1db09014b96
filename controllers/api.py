"""The controller's control API: JSON over HTTP on 127.0.0.1 only.

A plain WSGI callable over a routing table of (method, path) -> handler, so it runs under
os-ken's eventlet hub without a web framework and is tested by calling it directly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

Handler = Callable[[dict[str, Any]], Any]


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            500: "Internal Server Error"}


def make_wsgi(routes: dict[tuple[str, str], Handler],
              on_error: Callable[[BaseException], None]) -> Callable:
    def app(environ: dict, start_response: Callable) -> list[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
        try:
            handler = routes.get((method, path))
            if handler is None:
                known = any(p == path for _, p in routes)
                raise ApiError(405 if known else 404, f"no route {method} {path}")
            length = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(length) if length else b""
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                raise ApiError(400, "body is not JSON") from None
            status, payload = 200, handler(body)
        except ApiError as exc:
            status, payload = exc.status, {"error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - logged, then a 500 to the caller
            on_error(exc)
            status, payload = 500, {"error": repr(exc)}
        data = json.dumps(payload).encode()
        start_response(f"{status} {_REASONS.get(status, '')}",
                       [("Content-Type", "application/json"),
                        ("Content-Length", str(len(data)))])
        return [data]

    return app
