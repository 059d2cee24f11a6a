"""A local stand-in for the Anthropic Messages API, for tests that talk to Claude.

`MessagesServer` listens on 127.0.0.1 (a free port) in a background thread and answers each
`POST /v1/messages` with the next queued reply: a Messages API body (`reply_tool_use`,
`reply_text`), any raw text (`reply_raw`), or an HTTP 529 overloaded error (`reply_overloaded`).
It records every request (`requests`: the decoded JSON bodies). Point the official SDK at it
with `ANTHROPIC_BASE_URL=server.base_url`; nothing in the SDK is mocked.

    with MessagesServer() as server:
        server.reply_tool_use("submit_plan", {...})
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    status: int
    body: str
    headers: dict = field(default_factory=dict)


def message_body(content: list[dict], stop_reason: str = "end_turn",
                 model: str = "claude-test") -> dict:
    """A minimal, well-formed Messages API response around `content` blocks."""
    return {"id": "msg_test", "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop_reason, "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 10}}


class MessagesServer:
    """Queued replies to POST /v1/messages; an empty queue answers HTTP 500 (a test bug)."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    # --- lifecycle ---
    def __enter__(self) -> MessagesServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # --- queueing replies ---
    def reply_json(self, body: dict, status: int = 200, headers: dict | None = None) -> None:
        self._push(Reply(status, json.dumps(body), headers or {}))

    def reply_raw(self, text: str, status: int = 200) -> None:
        self._push(Reply(status, text))

    def reply_text(self, text: str) -> None:
        """An assistant message whose only content is `text` (e.g. not valid JSON)."""
        self.reply_json(message_body([{"type": "text", "text": text}]))

    def reply_tool_use(self, name: str, tool_input: dict) -> None:
        block = {"type": "tool_use", "id": f"toolu_{len(self.replies)}", "name": name,
                 "input": tool_input}
        self.reply_json(message_body([block], stop_reason="tool_use"))

    def reply_overloaded(self) -> None:
        self.reply_json({"type": "error",
                         "error": {"type": "overloaded_error", "message": "Overloaded"}},
                        status=529, headers={"retry-after-ms": "1"})

    def _push(self, reply: Reply) -> None:
        with self._lock:
            self.replies.append(reply)

    def _pop(self) -> Reply:
        with self._lock:
            if not self.replies:
                return Reply(500, json.dumps({"type": "error", "error": {
                    "type": "api_error", "message": "MessagesServer: no reply queued"}}))
            return self.replies.popleft()

    # --- HTTP ---
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length).decode()
                with server._lock:
                    server.requests.append({"path": self.path, **json.loads(raw or "{}")})
                reply = server._pop() if self.path.startswith("/v1/messages") else \
                    Reply(404, json.dumps({"type": "error", "error": {
                        "type": "not_found_error", "message": self.path}}))
                data = reply.body.encode()
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:  # keep test output clean
                pass

        return Handler
