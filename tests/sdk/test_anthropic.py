"""End-to-end tests across formats with the official SDKs, through keyrelay to keyrelay-mock.

- The OpenAI SDK against a model whose keys are Anthropic keys: keyrelay translates the
  Chat Completions request to Anthropic Messages and the answer (or stream) back.
- The Anthropic SDK against `/v1/messages`, for a model with Anthropic keys (passthrough)
  and for one with OpenAI keys (keyrelay translates both ways).

The mock answers "You said: <last user text>"; when tools are offered it calls the first one
with `{"<first required property>": "<last user text>"}`; after a tool result it answers
"Tool said: <result>". It counts one output token per space-separated word.
"""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

MODEL = "model-under-test"

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"unit": {"type": "string"}, "city": {"type": "string"}},
    "required": ["city"],
}
OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": WEATHER_SCHEMA,
        },
    }
]
ANTHROPIC_TOOLS = [
    {
        "name": "get_weather",
        "description": "Current weather in a city",
        "input_schema": WEATHER_SCHEMA,
    }
]
API_EVENTS = {
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
}


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def words_of(text: str) -> int:
    """How the mock counts output tokens: one per space-separated word."""
    return len(text.split(" "))


# --- the OpenAI SDK against an Anthropic-backed model --------------------------------------


@pytest.fixture
def anthropic_backed(mock, start_keyrelay):
    """A keyrelay whose MODEL is served by the Anthropic key `ak-1`."""
    return start_keyrelay([mock.anthropic_key("ak-1", MODEL)])


def test_openai_sdk_plain_via_anthropic(mock, anthropic_backed):
    client = anthropic_backed.client()

    resp = client.chat.completions.create(model=MODEL, messages=user("hello there"))

    assert resp.object == "chat.completion"
    assert resp.model == MODEL
    assert len(resp.choices) == 1
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content == "You said: hello there"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None
    assert resp.usage.completion_tokens == words_of("You said: hello there")
    assert resp.usage.prompt_tokens > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    # The Anthropic API was called with keyrelay's key (the mock counts x-api-key).
    assert mock.hits() == {"ak-1": 1}


def test_openai_sdk_streaming_via_anthropic(mock, anthropic_backed):
    client = anthropic_backed.client()

    chunks = list(
        client.chat.completions.create(model=MODEL, messages=user("stream me please"), stream=True)
    )

    assert len(chunks) >= 3
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1, "all chunks of one completion share its id"
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "You said: stream me please"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert all(c.usage is None for c in chunks), "usage was not requested"
    assert mock.hits() == {"ak-1": 1}


def test_openai_sdk_streaming_tool_call_with_usage_via_anthropic(mock, anthropic_backed):
    client = anthropic_backed.client()

    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=user("Paris"),
            tools=OPENAI_TOOLS,
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    # Assemble the tool calls the way OpenAI clients do: by `index`, id and name from the
    # first fragment, arguments concatenated.
    calls: dict[int, dict] = {}
    for c in chunks:
        if not c.choices:
            continue
        for frag in c.choices[0].delta.tool_calls or []:
            call = calls.setdefault(frag.index, {"id": None, "name": None, "arguments": ""})
            if frag.id:
                assert call["id"] is None, "id only on the first fragment"
                call["id"] = frag.id
            if frag.function and frag.function.name:
                call["name"] = frag.function.name
            if frag.function and frag.function.arguments:
                call["arguments"] += frag.function.arguments
    assert list(calls) == [0]
    call = calls[0]
    assert call["id"]
    assert call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"city": "Paris"}

    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["tool_calls"]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens > 0
    assert last.usage.completion_tokens > 0
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])
    assert all(c.choices for c in chunks[:-1])
    assert mock.hits() == {"ak-1": 1}


def test_openai_sdk_tool_result_round_trip_via_anthropic(mock, anthropic_backed):
    client = anthropic_backed.client()

    first = client.chat.completions.create(model=MODEL, messages=user("Rome"), tools=OPENAI_TOOLS)
    assert first.choices[0].finish_reason == "tool_calls"
    (call,) = first.choices[0].message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Rome"}

    second = client.chat.completions.create(
        model=MODEL,
        tools=OPENAI_TOOLS,
        messages=[
            *user("Rome"),
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "21C and clear"},
        ],
    )
    assert second.choices[0].message.content == "Tool said: 21C and clear"
    assert second.choices[0].finish_reason == "stop"
    assert mock.hits() == {"ak-1": 2}


# --- the Anthropic SDK on /v1/messages, for both kinds of upstream -------------------------


@pytest.fixture(params=["anthropic", "openai"])
def backend(request, mock, start_keyrelay):
    """(relay, upstream key) for a MODEL served by an Anthropic key or by an OpenAI key."""
    if request.param == "anthropic":
        entry = mock.anthropic_key("up-anthropic", MODEL)
    else:
        entry = mock.key("up-openai", MODEL)
    return start_keyrelay([entry]), entry["api_key"]


def test_anthropic_sdk_plain(mock, backend):
    relay, key = backend
    client = relay.anthropic_client()

    msg = client.messages.create(model=MODEL, max_tokens=100, messages=user("hello there"))

    assert msg.type == "message"
    assert msg.role == "assistant"
    assert msg.id.startswith("msg_")
    assert msg.model == MODEL
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == "You said: hello there"
    assert msg.stop_reason == "end_turn"
    assert msg.usage.output_tokens == words_of("You said: hello there")
    assert msg.usage.input_tokens > 0
    assert mock.hits() == {key: 1}


def test_anthropic_sdk_max_tokens_stop(mock, backend):
    relay, key = backend
    client = relay.anthropic_client()

    msg = client.messages.create(model=MODEL, max_tokens=2, messages=user("a b c d"))

    assert msg.content[0].text == "You said: "
    assert msg.stop_reason == "max_tokens"
    assert mock.hits() == {key: 1}


def test_anthropic_sdk_streaming(mock, backend):
    relay, key = backend
    client = relay.anthropic_client()

    with client.messages.stream(
        model=MODEL, max_tokens=100, messages=user("one two three")
    ) as stream:
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        kinds: list[str] = []
        text = ""
        for event in stream:
            kinds.append(event.type)
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                text += event.delta.text
        final = stream.get_final_message()

    # The SDK adds its own convenience events (`text`, …); keep the API's.
    api_events = [k for k in kinds if k in API_EVENTS]
    assert api_events[0] == "message_start"
    assert api_events[1] == "content_block_start"
    assert api_events[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert text == "You said: one two three"

    # The SDK's own accumulator.
    assert final.id.startswith("msg_")
    assert final.role == "assistant"
    assert [b.type for b in final.content] == ["text"]
    assert final.content[0].text == "You said: one two three"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == words_of("You said: one two three")
    assert final.usage.input_tokens > 0, "real input tokens must reach the client"
    assert mock.hits() == {key: 1}


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "stream"])
def test_anthropic_sdk_tool_use_and_tool_result(mock, backend, streamed):
    relay, key = backend
    client = relay.anthropic_client()

    request = {"model": MODEL, "max_tokens": 200, "tools": ANTHROPIC_TOOLS, "messages": user("Paris")}
    if streamed:
        with client.messages.stream(**request) as stream:
            first = stream.get_final_message()
    else:
        first = client.messages.create(**request)

    assert first.stop_reason == "tool_use"
    tool_uses = [b for b in first.content if b.type == "tool_use"]
    assert len(tool_uses) == 1
    tool_use = tool_uses[0]
    assert tool_use.name == "get_weather"
    assert tool_use.input == {"city": "Paris"}
    assert tool_use.id

    followup = {
        "model": MODEL,
        "max_tokens": 200,
        "tools": ANTHROPIC_TOOLS,
        "messages": [
            *user("Paris"),
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": tool_use.id, "content": "18C and sunny"}
                ],
            },
        ],
    }
    if streamed:
        with client.messages.stream(**followup) as stream:
            second = stream.get_final_message()
    else:
        second = client.messages.create(**followup)

    assert [b.type for b in second.content] == ["text"]
    assert second.content[0].text == "Tool said: 18C and sunny"
    assert second.stop_reason == "end_turn"
    assert mock.hits() == {key: 2}


def test_anthropic_sdk_count_tokens(mock, backend):
    relay, key = backend
    client = relay.anthropic_client()

    short = client.messages.count_tokens(model=MODEL, messages=user("a b c"))
    long = client.messages.count_tokens(
        model=MODEL, messages=user("one two three four five six seven eight nine ten")
    )

    assert isinstance(short.input_tokens, int)
    assert 0 < short.input_tokens < long.input_tokens
    if key == "up-anthropic":
        # Passed through: the mock's count (3 words + 3 per message).
        assert short.input_tokens == 6
        assert mock.hits() == {key: 2}
    else:
        # OpenAI has no token counting endpoint: answered by keyrelay itself.
        assert mock.hits() == {}


def test_anthropic_sdk_unknown_model_is_not_found(mock, backend):
    relay, _ = backend
    client = relay.anthropic_client()

    with pytest.raises(anthropic.NotFoundError) as info:
        client.messages.create(model="no-such-model", max_tokens=10, messages=user("hi"))

    e = info.value
    assert e.status_code == 404
    body = e.response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "not_found_error"
    assert "no-such-model" in body["error"]["message"]
    assert mock.hits() == {}


@pytest.mark.parametrize("upstream", ["anthropic", "openai"])
def test_anthropic_sdk_upstream_rate_limit(mock, start_keyrelay, upstream):
    # A key containing `status-429` makes the mock answer 429 in its API's own format.
    key = f"k-status-429-{upstream}"
    entry = mock.anthropic_key(key, MODEL) if upstream == "anthropic" else mock.key(key, MODEL)
    relay = start_keyrelay([entry])
    client = relay.anthropic_client()

    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(model=MODEL, max_tokens=10, messages=user("hi"))

    e = info.value
    assert e.status_code == 429
    body = e.response.json()
    assert body["type"] == "error"
    assert body["error"] == {
        "type": "rate_limit_error",
        "message": "Mock upstream failure with status 429.",
    }
    assert mock.hits() == {key: 1}


def test_openai_sdk_upstream_rate_limit_via_anthropic(mock, start_keyrelay):
    key = "k-status-429"
    relay = start_keyrelay([mock.anthropic_key(key, MODEL)])
    client = relay.client()

    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model=MODEL, messages=user("hi"))

    e = info.value
    assert e.status_code == 429
    assert e.response.json() == {
        "error": {
            "message": "Mock upstream failure with status 429.",
            "type": "rate_limit_error",
            "param": None,
            "code": None,
        }
    }
    assert mock.hits() == {key: 1}
