"""End-to-end tests: the official OpenAI Python SDK -> keyrelay -> keyrelay-mock.

Every request goes through the real SDK (request building, SSE parsing, error mapping),
so these tests fail when keyrelay's answers stop being what OpenAI clients expect.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

MODEL = "gpt-test"
CLIENT_TOKEN = "client-token"  # what conftest gives the SDK as its api_key


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def words_of(text: str) -> int:
    """How the mock counts completion tokens: one per space-separated word."""
    return len(text.split(" "))


# --- completions -------------------------------------------------------------------------


def test_non_streaming_completion(mock, start_keyrelay):
    relay = start_keyrelay([mock.key("k1", MODEL)])
    client = relay.client()

    resp = client.chat.completions.create(model=MODEL, messages=user("hello there"))

    assert resp.object == "chat.completion"
    assert resp.id.startswith("chatcmpl-")
    assert resp.model == MODEL
    assert len(resp.choices) == 1
    choice = resp.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content == "You said: hello there"
    assert choice.finish_reason == "stop"
    assert resp.usage is not None
    assert resp.usage.completion_tokens == words_of("You said: hello there")
    assert resp.usage.prompt_tokens > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    # keyrelay spent its own key upstream, never the client's token.
    assert mock.hits() == {"k1": 1}


def test_streaming_completion(mock, start_keyrelay):
    relay = start_keyrelay([mock.key("k1", MODEL)])
    client = relay.client()

    stream = client.chat.completions.create(
        model=MODEL, messages=user("stream me please"), stream=True
    )
    chunks = list(stream)

    assert len(chunks) >= 3
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert all(c.model == MODEL for c in chunks)
    assert len({c.id for c in chunks}) == 1, "all chunks of one completion share its id"
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "You said: stream me please"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert all(c.usage is None for c in chunks), "usage was not requested"
    assert mock.hits() == {"k1": 1}


def test_streaming_include_usage(mock, start_keyrelay):
    relay = start_keyrelay([mock.key("k1", MODEL)])
    client = relay.client()

    stream = client.chat.completions.create(
        model=MODEL,
        messages=user("count my words now"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    reply = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert reply == "You said: count my words now"
    assert last.usage.completion_tokens == words_of(reply) == 6
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])
    assert all(c.choices for c in chunks[:-1])


def test_streaming_arrives_incrementally(start_mock, start_keyrelay):
    delay_ms = 200
    mock = start_mock(chunk_delay_ms=delay_ms)
    relay = start_keyrelay([mock.key("k1", MODEL)])
    client = relay.client()

    started = time.monotonic()
    stream = client.chat.completions.create(
        model=MODEL, messages=user("one two three four five six"), stream=True
    )
    arrivals: list[tuple[float, object]] = []
    for chunk in stream:
        arrivals.append((time.monotonic() - started, chunk))

    content = [(t, c) for t, c in arrivals if c.choices and c.choices[0].delta.content]
    text = "".join(c.choices[0].delta.content for _, c in content)
    assert text == "You said: one two three four five six"
    # The mock pauses `delay_ms` before every frame after the first: 8 word chunks, then
    # the finish chunk. Were keyrelay buffering the body, they would all arrive at once.
    first_content, last_chunk = content[0][0], arrivals[-1][0]
    gaps = len(arrivals) - 1 - arrivals.index(content[0])
    assert gaps >= 8
    spread = last_chunk - first_content
    assert spread >= gaps * delay_ms / 1000 * 0.5, (
        f"chunks arrived within {spread:.3f} s, expected about {gaps * delay_ms / 1000:.1f} s: "
        f"arrival times {[round(t, 3) for t, _ in arrivals]}"
    )
    # And the stream keeps moving: no single wait swallows most of it.
    times = [t for t, _ in arrivals]
    steps = [b - a for a, b in zip(times, times[1:])]
    assert max(steps) < spread, f"arrival times {[round(t, 3) for t in times]}"


# --- key rotation ------------------------------------------------------------------------


def test_round_robin_one_model(mock, start_keyrelay):
    keys = ["rr-a", "rr-b", "rr-c"]
    relay = start_keyrelay([mock.key(k, MODEL) for k in keys])
    client = relay.client()

    served: list[str] = []
    before = mock.hits()
    for i in range(9):
        resp = client.chat.completions.create(model=MODEL, messages=user(f"request {i}"))
        assert resp.choices[0].message.content == f"You said: request {i}"
        after = mock.hits()
        changed = [k for k in after if after[k] != before.get(k, 0)]
        assert len(changed) == 1 and after[changed[0]] == before.get(changed[0], 0) + 1
        served.append(changed[0])
        before = after

    assert mock.hits() == {k: 3 for k in keys}
    # A strict rotation: every 3 consecutive requests use 3 different keys, in a fixed cycle.
    assert set(served[:3]) == set(keys)
    assert served == served[:3] * 3, served


def test_round_robin_two_models_interleaved(mock, start_keyrelay):
    a_keys = ["a-1", "a-2", "a-3"]
    b_keys = ["b-1", "b-2"]
    relay = start_keyrelay(
        [mock.key("a-1", "model-a"), mock.key("b-1", "model-b"), mock.key("a-2", "model-a"),
         mock.key("a-3", "model-a"), mock.key("b-2", "model-b")]
    )
    client = relay.client()

    for i in range(6):
        for model in ("model-a", "model-b"):
            resp = client.chat.completions.create(model=model, messages=user(f"{model} {i}"))
            assert resp.model == model
            assert resp.choices[0].message.content == f"You said: {model} {i}"

    hits = mock.hits()
    assert hits == {**{k: 2 for k in a_keys}, **{k: 3 for k in b_keys}}
    assert CLIENT_TOKEN not in hits


def test_round_robin_concurrent_requests(mock, start_keyrelay):
    a_keys = ["ca-1", "ca-2", "ca-3"]
    b_keys = ["cb-1", "cb-2"]
    relay = start_keyrelay(
        [mock.key(k, "model-a") for k in a_keys] + [mock.key(k, "model-b") for k in b_keys]
    )
    client = relay.client()
    jobs = ["model-a"] * 12 + ["model-b"] * 12

    def run(model: str) -> str:
        resp = client.chat.completions.create(model=model, messages=user("in parallel"))
        return resp.model

    with ThreadPoolExecutor(max_workers=8) as pool:
        models = list(pool.map(run, jobs))

    assert Counter(models) == Counter(jobs)
    assert mock.hits() == {**{k: 4 for k in a_keys}, **{k: 6 for k in b_keys}}


def test_upstream_model_rewrite(mock, start_keyrelay):
    relay = start_keyrelay(
        [
            mock.key("k-rewrite", "client-facing", upstream_model="provider-model-x", name="rw"),
            mock.key("k-plain", "plain-model"),
        ]
    )
    client = relay.client()

    resp = client.chat.completions.create(model="client-facing", messages=user("which model"))
    # The mock echoes the model it was asked for: keyrelay sent the upstream name.
    assert resp.model == "provider-model-x"
    assert resp.choices[0].message.content == "You said: which model"

    chunks = list(
        client.chat.completions.create(
            model="client-facing", messages=user("which model"), stream=True
        )
    )
    assert {c.model for c in chunks} == {"provider-model-x"}

    plain = client.chat.completions.create(model="plain-model", messages=user("x"))
    assert plain.model == "plain-model"
    assert mock.hits() == {"k-rewrite": 2, "k-plain": 1}


# --- errors, as the SDK's exception types ------------------------------------------------


def test_unknown_model_is_not_found(mock, start_keyrelay):
    relay = start_keyrelay([mock.key("k1", MODEL)])
    client = relay.client()

    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=user("hi"))

    e = info.value
    assert e.status_code == 404
    assert e.code == "model_not_found"
    assert e.param == "model"
    assert e.type == "invalid_request_error"
    error = e.response.json()["error"]
    assert error["code"] == "model_not_found"
    assert "no-such-model" in error["message"]
    assert set(error) == {"message", "type", "param", "code"}
    assert mock.hits() == {}, "no key may be spent on an unknown model"


@pytest.mark.parametrize(
    ("status", "exc_type", "stream"),
    [
        (429, openai.RateLimitError, False),
        (429, openai.RateLimitError, True),
        (500, openai.InternalServerError, False),
    ],
)
def test_upstream_error_status_passes_through(mock, start_keyrelay, status, exc_type, stream):
    key = f"k-status-{status}"
    relay = start_keyrelay([mock.key(key, MODEL)])
    client = relay.client()

    with pytest.raises(exc_type) as info:
        client.chat.completions.create(model=MODEL, messages=user("hi"), stream=stream)

    e = info.value
    assert e.status_code == status
    expected_type, expected_code = ("requests", "rate_limit_exceeded") if status == 429 else ("server_error", None)
    assert e.response.json() == {
        "error": {
            "message": f"Mock upstream failure with status {status}.",
            "type": expected_type,
            "param": None,
            "code": expected_code,
        }
    }
    assert e.code == expected_code
    assert mock.hits() == {key: 1}


def test_upstream_validation_error_is_bad_request(mock, start_keyrelay):
    relay = start_keyrelay([mock.key("k1", MODEL)])
    client = relay.client()

    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=[])

    e = info.value
    assert e.status_code == 400
    assert e.code == "empty_array"
    assert e.param == "messages"
    assert e.type == "invalid_request_error"
    assert e.response.json()["error"]["code"] == "empty_array"
    # It was the upstream that rejected it, and its answer reached the client unchanged.
    assert mock.hits() == {"k1": 1}


def test_upstream_unreachable_is_502(start_keyrelay, unused_port):
    relay = start_keyrelay(
        [{"api_key": "k1", "model": MODEL, "provider": "openai",
          "base_url": f"http://127.0.0.1:{unused_port}/v1"}]
    )
    client = relay.client()

    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model=MODEL, messages=user("anyone there"))

    e = info.value
    assert e.status_code == 502
    assert e.code == "upstream_unreachable"
    assert e.type == "server_error"
    assert e.response.json()["error"]["code"] == "upstream_unreachable"


def test_first_byte_timeout_is_504(mock, start_keyrelay):
    relay = start_keyrelay(
        [mock.key("k-delay-2000", MODEL)], extra_args=["--first-byte-timeout", "0.5"]
    )
    client = relay.client()

    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model=MODEL, messages=user("too slow"))
    elapsed = time.monotonic() - started

    e = info.value
    assert e.status_code == 504
    assert e.code == "upstream_first_byte_timeout"
    assert e.response.json()["error"]["code"] == "upstream_first_byte_timeout"
    # keyrelay gave up at its timeout, not when the upstream finally answered (2 s).
    assert 0.4 <= elapsed < 1.8, f"answered after {elapsed:.3f} s"


# --- models ------------------------------------------------------------------------------


def test_models_list_in_configured_order(mock, start_keyrelay):
    relay = start_keyrelay(
        [
            mock.key("m1", "zeta-model"),
            mock.key("m2", "alpha-model"),
            mock.key("m3", "zeta-model"),
            mock.key("m4", "mid-model"),
        ]
    )
    client = relay.client()

    page = client.models.list()
    models = list(page)

    assert [m.id for m in models] == ["zeta-model", "alpha-model", "mid-model"]
    assert all(m.object == "model" for m in models)
    assert mock.hits() == {}, "listing models must not call the upstream"
