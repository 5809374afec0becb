#!/usr/bin/env python3
"""A slow OpenAI-like streaming upstream with a provider-sized response head (25 headers,
~1.4 KB, as OpenAI sends them), for measure.py --upstream realistic. keyrelay-mock's head
has 9 headers, and hyper keeps the response's header map per client connection.

  python3 upstream.py --port 0 --chunks 20 --delay-ms 500   # prints "listening on URL"
"""
import argparse
import asyncio
import json
import time

HEAD = (
    "HTTP/1.1 200 OK\r\n"
    "date: {date}\r\n"
    "content-type: text/event-stream; charset=utf-8\r\n"
    "transfer-encoding: chunked\r\n"
    "connection: keep-alive\r\n"
    "access-control-expose-headers: X-Request-ID\r\n"
    "openai-organization: user-abcdefghijklmnopqrstuvwx\r\n"
    "openai-processing-ms: 183\r\n"
    "openai-project: proj_abcdefghijklmnopqrstuvwx\r\n"
    "openai-version: 2020-10-01\r\n"
    "x-envoy-upstream-service-time: 187\r\n"
    "x-ratelimit-limit-requests: 10000\r\n"
    "x-ratelimit-limit-tokens: 30000000\r\n"
    "x-ratelimit-remaining-requests: 9999\r\n"
    "x-ratelimit-remaining-tokens: 29999987\r\n"
    "x-ratelimit-reset-requests: 6ms\r\n"
    "x-ratelimit-reset-tokens: 0s\r\n"
    "x-request-id: req_0123456789abcdef0123456789abcdef\r\n"
    "strict-transport-security: max-age=31536000; includeSubDomains; preload\r\n"
    "cf-cache-status: DYNAMIC\r\n"
    "set-cookie: __cf_bm=Q1w2E3r4T5y6U7i8O9p0A1s2D3f4G5h6J7k8L9z0X1c2V3b4N5m6Q7w8E9r0T1y2U3i4O5p6A7s8D9f0G1h2J3k4L5z6X7c8V9b0-1700000000-1.0.1.1-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefABCDEFghijklMNOPqrstUVWXyz; path=/; expires=Tue, 01-Jan-30 00:30:00 GMT; domain=.api.openai.com; HttpOnly; Secure; SameSite=None\r\n"
    "set-cookie: _cfuvid=AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdef-1700000000000-0.0.1.1-604800000; path=/; domain=.api.openai.com; HttpOnly; Secure; SameSite=None\r\n"
    "x-content-type-options: nosniff\r\n"
    "server: cloudflare\r\n"
    "cf-ray: 8f0123456789abcd-SJC\r\n"
    "alt-svc: h3=\":443\"; ma=86400\r\n"
    "\r\n"
)


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def event(content, finish=None, usage=None, choices=True) -> bytes:
    body = {
        "id": "chatcmpl-AbCdEfGhIjKlMnOpQrStUvWxYz012",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_0123456789",
        "choices": [{"index": 0, "delta": content, "logprobs": None, "finish_reason": finish}]
        if choices else [],
        "usage": usage,
    }
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


async def serve(reader, writer, chunks: int, delay: float):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
            writer.write(HEAD.format(date=date).encode() + chunk(event({"role": "assistant", "content": ""})))
            for i in range(chunks):
                await asyncio.sleep(delay)
                writer.write(chunk(event({"content": f" w{i}"})))
            writer.write(chunk(event({}, finish="stop")))
            writer.write(chunk(event(None, usage={"prompt_tokens": 9, "completion_tokens": chunks,
                                                  "total_tokens": 9 + chunks}, choices=False)))
            writer.write(chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--chunks", type=int, default=20)
    ap.add_argument("--delay-ms", type=int, default=500)
    args = ap.parse_args()
    server = await asyncio.start_server(
        lambda r, w: serve(r, w, args.chunks, args.delay_ms / 1000), "127.0.0.1", args.port,
        backlog=4096)
    port = server.sockets[0].getsockname()[1]
    print(f"listening on http://127.0.0.1:{port}/v1", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
