"""An OpenAI-compatible loopback engine that answers instantly, in its own process, for benches that
measure proverctl's own CPU per request (the engine's CPU must not be counted in proverctl's process,
and a threaded http.server would itself be the bottleneck at 64 requests in flight).

It speaks HTTP/1.1 with keep-alive on asyncio streams: `GET /v1/models`, `POST /v1/chat/completions`
and `POST /v1/completions`. The answer to a prompt is looked up by the theorem name the prompt ends
with (`--answers FILE`: a JSON object name -> answer text), else "answer"; with `--vary` every answer's
last proof (after its last `:= by` line, else at the end of the last code block) holds a comment naming
the request, so no two extracted candidates are the same text (as no two samples of a model are: caches
keyed by text get no hit they would not get in a real run).
`--delay S` holds each answer S seconds (asyncio: any number of requests wait at once), so a client
can keep a chosen number of requests in flight. It stands in for an engine's transport only, never for
a model's judgement.

    python tests/loopback_engine.py [--port 0] [--answers FILE] [--model NAME] [--vary] [--delay S]
    # prints "PORT <n>" once it listens
"""

from __future__ import annotations

import argparse
import asyncio
import json


def theorem_name(body: dict) -> str | None:
    if "messages" in body:
        text = body["messages"][-1].get("content") or ""
    else:
        text = body.get("prompt") or ""
    at = text.rfind("theorem ")
    return text[at + 8:].split(None, 1)[0] if at >= 0 else None


async def serve(port: int, answers: dict[str, str], model: str, vary: bool = False, delay: float = 0.0) -> None:
    served = {"n": 0}

    def reply(path: str, body: dict | None) -> tuple[int, dict]:
        if path == "/v1/models":
            return 200, {"object": "list", "data": [{"id": model, "object": "model", "owned_by": "loopback", "root": model}]}
        if path in ("/v1/chat/completions", "/v1/completions") and body is not None:
            served["n"] += 1
            text = answers.get(theorem_name(body) or "", "answer")
            if vary and text.rstrip().endswith("```"):
                # Inside the last proof (so the candidate extracted from it differs too), else before the fence.
                at = text.rfind(":= by\n") + len(":= by\n") if ":= by\n" in text else text.rstrip().rfind("```")
                text = text[:at] + f"  -- request {served['n']}\n" + text[at:]
            choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                      if path.endswith("chat/completions") else {"index": 0, "text": text, "finish_reason": "stop"})
            return 200, {"id": f"cmpl-{served['n']}", "object": "chat.completion", "model": model, "choices": [choice],
                         "usage": {"prompt_tokens": 500, "completion_tokens": 4000, "total_tokens": 4500}}
        return 404, {"error": {"message": f"no route {path}"}}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
                length = int(headers.get("content-length", "0"))
                raw = await reader.readexactly(length) if length else b""
                status, data = reply(path, json.loads(raw) if method == "POST" and raw else None)
                if delay and method == "POST":
                    await asyncio.sleep(delay)
                payload = json.dumps(data).encode()
                writer.write(f"HTTP/1.1 {status} {'OK' if status == 200 else 'Not Found'}\r\nContent-Type: application/json\r\n"
                             f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--answers", default=None)
    parser.add_argument("--model", default="loopback-model")
    parser.add_argument("--vary", action="store_true")
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    answers = json.loads(open(args.answers).read()) if args.answers else {}
    try:
        asyncio.run(serve(args.port, answers, args.model, args.vary, args.delay))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
