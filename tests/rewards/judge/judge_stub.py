"""A local OpenAI-compatible chat-completions server that misbehaves on purpose.

It reads the judge prompt (the default template) and replies by markers in it: ``[yes]`` /
``[no]`` force the verdict, and ``[slow]`` (replies after ``slow_seconds``), ``[broken]``
(always 500), ``[flaky]`` (500 on the first request of each prompt, then fine), ``[garbled]``
(not JSON), ``[drop]`` (closes the connection without a reply), ``[ramble]`` (a reply with no
verdict) and ``[deny]`` (401) misbehave. Otherwise the verdict is CORRECT when the response
contains the reference answer. Every request is recorded.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _section(text: str, title: str) -> str:
    if f"{title}:\n" not in text:
        return ""
    return text.split(f"{title}:\n", 1)[1].split("\n\n", 1)[0].strip()


class StubJudgeServer:
    def __init__(self, slow_seconds: float = 1.0) -> None:
        self.slow_seconds = slow_seconds
        self.requests: list[dict] = []  # {"prompt", "authorization", "body"}
        self.seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][-1]["content"]
                with stub._lock:
                    stub.requests.append({"prompt": prompt, "body": body,
                                          "authorization": self.headers.get("Authorization")})
                    stub.seen[prompt] += 1
                    attempt = stub.seen[prompt]
                if self.path != "/v1/chat/completions":
                    return self._send(404, b'{"error": "no such route"}')
                if "[slow]" in prompt:
                    time.sleep(stub.slow_seconds)
                if "[broken]" in prompt or ("[flaky]" in prompt and attempt == 1):
                    return self._send(500, b'{"error": "internal"}')
                if "[deny]" in prompt:
                    return self._send(401, b'{"error": "bad key"}')
                if "[garbled]" in prompt:
                    return self._send(200, b'{"choices": [{"message": ')
                if "[drop]" in prompt:
                    self.close_connection = True
                    return  # nothing written: the client sees the connection close
                self._send(200, json.dumps({
                    "id": "stub", "object": "chat.completion", "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop", "message": {
                        "role": "assistant", "content": stub.reply(prompt)}}]}).encode())

            def _send(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @staticmethod
    def reply(prompt: str) -> str:
        if "[ramble]" in prompt:
            return "Hard to say. It might be right, or not."
        if "[yes]" in prompt or "[no]" in prompt:
            correct = "[yes]" in prompt
        else:
            reference, response = _section(prompt, "Reference answer"), _section(prompt,
                                                                                 "Response")
            correct = bool(reference) and reference in response
        # a judge that reasons first and quotes the format on the way: the last verdict counts
        return (f"The format is 'Verdict: CORRECT' or 'Verdict: INCORRECT'. Checked.\n"
                f"Verdict: {'CORRECT' if correct else 'INCORRECT'}")

    def __enter__(self) -> "StubJudgeServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
