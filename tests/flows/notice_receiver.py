"""A webhook receiver on 127.0.0.1 (stdlib http.server in a thread) that keeps every POST."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    url: str  # http://127.0.0.1:PORT
    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (path, JSON body)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [body for _, body in self.posts if body.get("kind") == kind]


@contextlib.contextmanager
def notice_receiver() -> Iterator[Received]:
    received = Received("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.posts.append((self.path, json.loads(body)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:  # quiet: the test reads ``posts``
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    received.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()
