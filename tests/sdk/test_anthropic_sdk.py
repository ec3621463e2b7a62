"""The official anthropic Python SDK against `chaosgate mock --api anthropic`.

Clients never retry (max_retries=0), so each call is exactly one request and every
forced fault reaches the test as the SDK surfaces it. Streams are read both through the
`client.messages.stream(...)` helper (MessageStream) and raw (`stream=True`).
"""
import json
import time

import anthropic
import httpx2
import pytest

MODEL = "claude-haiku-4-5"
MSGS = [{"role": "user", "content": "Say something."}]

# anthropic 2.x maps 529 to OverloadedError (a subclass of InternalServerError); older
# SDKs had no class for it and fell back to InternalServerError.
OVERLOADED = getattr(anthropic, "OverloadedError", anthropic.InternalServerError)


def fault(value):
    return {"x-chaosgate-fault": value}


@pytest.fixture(scope="module")
def client(anthropic_url):
    """One client for the module (building one costs ~50 ms: it loads the trust store)."""
    return anthropic.Anthropic(base_url=anthropic_url, api_key="sk-ant-chaosgate-test", max_retries=0, timeout=5.0)


def create(client, n, **kw):
    return client.messages.create(model=MODEL, max_tokens=n, messages=MSGS, **kw)


def read_helper(client, n, value=None):
    """Read a MessageStream's text_stream, keeping what arrived even if it raises.
    Returns (pieces, exc, stream); the stream is closed but its snapshot is readable."""
    pieces = []
    with client.messages.stream(
        model=MODEL, max_tokens=n, messages=MSGS, extra_headers=fault(value) if value else None
    ) as stream:
        try:
            for text in stream.text_stream:
                pieces.append(text)
        except BaseException as exc:  # noqa: BLE001 - the test inspects what the SDK raised
            return pieces, exc, stream
    return pieces, None, stream


def read_raw(client, n, value=None):
    """Iterate a raw `stream=True` response. Returns (event types, text pieces, exc)."""
    kinds, pieces = [], []
    try:
        for event in create(client, n, stream=True, extra_headers=fault(value) if value else None):
            kinds.append(event.type)
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                pieces.append(event.delta.text)
    except BaseException as exc:  # noqa: BLE001
        return kinds, pieces, exc
    return kinds, pieces, None


# --- healthy traffic -------------------------------------------------------------------


def test_plain_message(client):
    m = create(client, 7)
    assert m.model == MODEL
    assert m.role == "assistant" and m.type == "message"
    assert [b.type for b in m.content] == ["text"]
    text = m.content[0].text
    assert text and text.startswith(" ")  # filler words, each with a leading space
    assert len(text.split()) == 7
    assert m.stop_reason == "max_tokens"
    assert m.usage.output_tokens == 7
    assert m.usage.input_tokens >= 1


def test_stream_helper_reassembles_the_plain_text(client):
    plain = create(client, 10).content[0].text
    pieces, exc, stream = read_helper(client, 10)
    assert exc is None
    assert len(pieces) == 10
    assert "".join(pieces) == plain
    final = stream.get_final_message()
    assert final.model == MODEL
    assert final.content[0].text == plain
    assert final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 10
    assert final.usage.input_tokens >= 1


def test_raw_stream_reassembles_the_plain_text(client):
    plain = create(client, 6).content[0].text
    events = list(create(client, 6, stream=True))
    kinds = [e.type for e in events]
    # The wire also carries a `ping` after content_block_start; the SDK drops pings.
    assert kinds == (
        ["message_start", "content_block_start"]
        + ["content_block_delta"] * 6
        + ["content_block_stop", "message_delta", "message_stop"]
    )
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text == plain
    start, delta = events[0], events[-2]
    assert start.message.model == MODEL
    assert start.message.usage.input_tokens >= 1
    assert delta.delta.stop_reason == "max_tokens"
    assert delta.usage.output_tokens == 6


def test_raw_wire_has_ping_the_sdk_hides(client):
    with client.messages.with_streaming_response.create(
        model=MODEL, max_tokens=2, messages=MSGS, stream=True
    ) as response:
        names = [line[len("event: "):] for line in response.iter_lines() if line.startswith("event: ")]
    assert names == [
        "message_start", "content_block_start", "ping",
        "content_block_delta", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop",
    ]


# --- models, count_tokens, rate-limit headers -------------------------------------------


@pytest.fixture(scope="module")
def strict(anthropic_url):
    """A client that validates every response against the SDK's types (ModelInfo needs
    `lifecycle`, `created_at` as a datetime, `type: "model"`, …)."""
    return anthropic.Anthropic(base_url=anthropic_url, api_key="sk-ant-chaosgate-test", max_retries=0, timeout=5.0,
                               _strict_response_validation=True)


def test_models_list_is_strictly_valid_and_anthropic_only(strict):
    models = list(strict.models.list())
    assert models
    for m in models:
        assert m.type == "model" and m.id.startswith("claude-")
        assert m.lifecycle == "active"
        assert m.created_at.year >= 2024
    # paging: one at a time walks the same list
    assert [m.id for m in strict.models.list(limit=1)] == [m.id for m in models]


def test_models_retrieve(strict):
    first = next(iter(strict.models.list()))
    m = strict.models.retrieve(first.id)
    assert m.id == first.id and m.display_name == first.display_name
    with pytest.raises(anthropic.NotFoundError) as info:
        strict.models.retrieve("gpt-4o")
    assert info.value.body["error"]["type"] == "not_found_error"


def test_count_tokens(strict):
    r = strict.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "abcdefgh"}], system="abcd")
    assert r.input_tokens == 3


def test_rate_limit_headers_on_every_response(client):
    names = [f"anthropic-ratelimit-{d}-{p}" for d in ("requests", "tokens", "input-tokens", "output-tokens")
             for p in ("limit", "remaining", "reset")]
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=2, messages=MSGS)
    assert all(raw.headers.get(n) for n in names), dict(raw.headers)
    raw = client.models.with_raw_response.list()
    assert all(raw.headers.get(n) for n in names)
    with pytest.raises(anthropic.RateLimitError) as info:
        create(client, 2, extra_headers=fault("status=429"))
    assert all(info.value.response.headers.get(n) for n in names)


def test_max_tokens_too_large_is_a_bad_request(client):
    with pytest.raises(anthropic.BadRequestError) as info:
        create(client, 4294967296)
    assert info.value.body["error"]["type"] == "invalid_request_error"
    assert "4294967296 > 128000" in info.value.body["error"]["message"]


# --- forced HTTP errors ----------------------------------------------------------------

# value, SDK class (exact), status, error.type
FORCED = [
    ("status=429", anthropic.RateLimitError, 429, "rate_limit_error"),
    # Anthropic has no insufficient_quota type: a spend cap is a rate_limit_error too.
    ("status=429,kind=insufficient_quota", anthropic.RateLimitError, 429, "rate_limit_error"),
    ("status=500", anthropic.InternalServerError, 500, "api_error"),
    ("status=401", anthropic.AuthenticationError, 401, "authentication_error"),
    ("status=529", OVERLOADED, 529, "overloaded_error"),
]


@pytest.mark.parametrize("value,exc_class,status,etype", FORCED, ids=[f[0] for f in FORCED])
def test_forced_error_raises_the_sdk_class(client, value, exc_class, status, etype):
    with pytest.raises(anthropic.APIStatusError) as info:
        create(client, 3, extra_headers=fault(value))
    e = info.value
    assert type(e) is exc_class
    assert e.status_code == status
    # The SDK keeps the whole envelope {"type":"error","error":{type,message},"request_id"}.
    assert e.body["type"] == "error"
    assert e.body["error"]["type"] == etype and e.type == etype
    assert isinstance(e.body["error"]["message"], str) and e.body["error"]["message"]
    assert isinstance(e.body["request_id"], str) and e.body["request_id"]
    assert e.request_id == e.body["request_id"]  # the `request-id` header agrees


def test_overloaded_is_an_internal_server_error(client):
    """Code written against older SDKs (`except InternalServerError`) still catches 529."""
    with pytest.raises(anthropic.InternalServerError) as info:
        create(client, 3, extra_headers=fault("status=529"))
    assert info.value.status_code == 529


def test_forced_error_on_stream_helper_raises_on_enter(client):
    with pytest.raises(anthropic.RateLimitError):
        with client.messages.stream(model=MODEL, max_tokens=3, messages=MSGS, extra_headers=fault("status=429")):
            pass


# --- faults inside a 200 stream --------------------------------------------------------


def _assert_inband_overloaded(exc):
    # `event: error` arrives on a 200 response; the SDK's _streaming.py builds the error
    # with make_status_error(status=200), whose (status, code) table has no entry for 200
    # and which maps only >= 500 to InternalServerError: so it is the bare APIStatusError,
    # not OverloadedError, with status_code 200 and the event's data as body.
    assert type(exc) is anthropic.APIStatusError
    assert exc.status_code == 200
    assert exc.body["type"] == "error"
    assert exc.body["error"]["type"] == "overloaded_error"
    assert exc.type == "overloaded_error"


def test_inband_error_via_stream_helper(client):
    pieces, exc, stream = read_helper(client, 20, "error_after=3")
    _assert_inband_overloaded(exc)
    assert len(pieces) == 3
    # What arrived before the error is still in the helper's snapshot.
    snap = stream.current_message_snapshot
    assert snap.content[0].text == "".join(pieces)
    assert snap.stop_reason is None


def test_inband_error_via_raw_stream(client):
    kinds, pieces, exc = read_raw(client, 20, "error_after=3")
    _assert_inband_overloaded(exc)
    assert len(pieces) == 3
    assert kinds == ["message_start", "content_block_start"] + ["content_block_delta"] * 3


def _assert_cut(exc):
    # The connection closes without the chunked terminator. The anthropic SDK does not wrap
    # transport errors raised while iterating a stream: httpx2's RemoteProtocolError
    # escapes as is. It is neither an anthropic.APIError nor an APIConnectionError, so
    # `except anthropic.APIError` misses it.
    assert type(exc) is httpx2.RemoteProtocolError
    assert "incomplete chunked read" in str(exc)
    assert not isinstance(exc, anthropic.AnthropicError)


def test_cut_stream_via_stream_helper(client):
    pieces, exc, stream = read_helper(client, 20, "cut_after=5")
    _assert_cut(exc)
    assert len(pieces) == 5
    snap = stream.current_message_snapshot
    assert snap.content[0].text == "".join(pieces)
    assert snap.stop_reason is None  # no message_delta came


def test_cut_stream_via_raw_stream(client):
    kinds, pieces, exc = read_raw(client, 20, "cut_after=5")
    _assert_cut(exc)
    assert len(pieces) == 5
    assert kinds == ["message_start", "content_block_start"] + ["content_block_delta"] * 5


def test_no_terminal_stream_ends_silently(client):
    """no_terminal: all tokens and message_delta, no message_stop, then a clean end of
    body. Neither the raw stream nor the helper notices: no error, and the helper's final
    message looks complete."""
    kinds, pieces, exc = read_raw(client, 4, "no_terminal")
    assert exc is None
    assert len(pieces) == 4
    assert kinds[-1] == "message_delta" and "message_stop" not in kinds

    pieces, exc, stream = read_helper(client, 4, "no_terminal")
    assert exc is None and len(pieces) == 4
    final = stream.get_final_message()
    assert final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 4


def test_malformed_event_escapes_as_json_decode_error(client):
    """An event whose JSON is cut short: `sse.json()` raises json.JSONDecodeError straight
    through; it is not an anthropic.AnthropicError."""
    pieces, exc, _ = read_helper(client, 20, "malformed_after=2")
    assert isinstance(exc, json.JSONDecodeError)
    assert not isinstance(exc, anthropic.AnthropicError)
    assert len(pieces) == 2


# --- latency faults --------------------------------------------------------------------


def test_delay_still_answers(client):
    t0 = time.monotonic()
    m = create(client, 3, extra_headers=fault("delay=200ms"))
    assert time.monotonic() - t0 >= 0.2
    assert len(m.content[0].text.split()) == 3


def test_hang_raises_timeout_error(client):
    t0 = time.monotonic()
    with pytest.raises(anthropic.APITimeoutError) as info:
        client.with_options(timeout=0.5).messages.create(
            model=MODEL, max_tokens=3, messages=MSGS, extra_headers=fault("hang")
        )
    assert 0.4 <= time.monotonic() - t0 < 3.0
    assert isinstance(info.value, anthropic.APIConnectionError)  # APITimeoutError's base
    assert isinstance(info.value.__cause__, httpx2.TimeoutException)
