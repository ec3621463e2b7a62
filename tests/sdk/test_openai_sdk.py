"""The official openai Python SDK against `chaosgate mock --api openai`.

Clients never retry (max_retries=0), so each call is exactly one request and every
forced fault reaches the test as the SDK surfaces it.
"""
import base64
import json
import math
import os
import pathlib
import shutil
import struct
import subprocess
import time

import httpx2
import openai
import pytest

MODEL = "gpt-4o-mini"
MSGS = [{"role": "user", "content": "Say something."}]


def fault(value):
    return {"x-chaosgate-fault": value}


@pytest.fixture(scope="module")
def client(openai_url):
    """One client for the module (building one costs ~50 ms: it loads the trust store)."""
    return openai.OpenAI(base_url=openai_url + "/v1", api_key="sk-chaosgate-test", max_retries=0, timeout=5.0)


def chat(client, n, **kw):
    return client.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=n, **kw)


def drain(stream):
    """Consume a chat stream, keeping what arrived even if iteration raises.

    Returns (state, exc): state has the non-empty content pieces, the finish reasons,
    the usage chunks and the models the chunks named; exc is what iteration raised, or None."""
    state = {"pieces": [], "finish": [], "usage": [], "models": set()}
    try:
        for chunk in stream:
            state["models"].add(chunk.model)
            for choice in chunk.choices:
                if choice.delta.content:
                    state["pieces"].append(choice.delta.content)
                if choice.finish_reason:
                    state["finish"].append(choice.finish_reason)
            if chunk.usage is not None:
                state["usage"].append(chunk.usage)
    except BaseException as exc:  # noqa: BLE001 - the test inspects what the SDK raised
        return state, exc
    return state, None


# --- healthy traffic -------------------------------------------------------------------


def test_plain_chat(client):
    r = chat(client, 12)
    text = r.choices[0].message.content
    assert text and text.startswith(" ")  # filler words, each with a leading space
    assert len(text.split()) == 12
    assert r.model == MODEL
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None
    assert r.usage.completion_tokens == 12
    assert r.usage.prompt_tokens >= 1
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_stream_with_include_usage_reassembles_the_plain_text(client):
    plain = chat(client, 9).choices[0].message.content
    chunks = list(chat(client, 9, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == 9
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]
    # include_usage: one extra, last chunk with no choices and the usage; none before it.
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == 9
    assert last.usage.total_tokens == last.usage.prompt_tokens + 9
    assert all(c.usage is None for c in chunks[:-1])
    assert {c.model for c in chunks} == {MODEL}


def test_stream_without_include_usage_has_no_usage_chunk(client):
    state, exc = drain(chat(client, 4, stream=True))
    assert exc is None
    assert state["models"] == {MODEL}
    assert len(state["pieces"]) == 4
    assert state["finish"] == ["length"]
    assert state["usage"] == []


def test_embeddings_one_vector_per_input(client):
    inputs = ["alpha", "beta", "gamma"]
    e = client.embeddings.create(model="text-embedding-3-small", input=inputs)
    assert len(e.data) == len(inputs)
    assert [d.index for d in e.data] == [0, 1, 2]
    dims = {len(d.embedding) for d in e.data}
    assert len(dims) == 1 and dims.pop() > 0
    assert e.model == "text-embedding-3-small"
    assert e.usage.prompt_tokens >= 1


def _unit_nonzero(vec, dims):
    assert len(vec) == dims
    assert all(isinstance(x, float) for x in vec)
    assert sum(1 for x in vec if x != 0.0) > dims * 0.9  # not decoded into zeros
    assert abs(math.sqrt(sum(x * x for x in vec)) - 1.0) < 1e-4


def test_embeddings_default_request_is_base64_and_decodes_to_the_vector(client):
    """Without encoding_format the SDK asks for base64 and decodes it: the floats must
    survive (a mock answering floats to a base64 request is read as garbage by the
    TypeScript SDK)."""
    raw = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input="hi", dimensions=64)
    sent = json.loads(raw.http_request.content)
    assert sent.get("encoding_format") == "base64"
    wire = raw.http_response.json()["data"][0]["embedding"]
    assert isinstance(wire, str)  # the mock answered in the format asked for
    e = raw.parse()
    _unit_nonzero(e.data[0].embedding, 64)
    assert list(struct.unpack("<64f", base64.b64decode(wire))) == e.data[0].embedding


NODE_SDK = pathlib.Path(__file__).resolve().parents[2] / ".cache" / "sdk-node" / "node_modules"


@pytest.mark.skipif(not (NODE_SDK / "openai").is_dir() or not shutil.which("node"),
                    reason="the openai npm package is not installed (scripts/sdk-setup installs it when npm is present)")
def test_typescript_sdk_decodes_embeddings_to_nonzero_values(openai_url):
    out = subprocess.run(
        ["node", str(pathlib.Path(__file__).with_name("embeddings_node.mjs")), openai_url],
        env={**os.environ, "NODE_PATH": str(NODE_SDK)}, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["dims"] == [384, 384]
    assert all(n > 350 for n in r["nonzero"]), r
    assert all(abs(n - 1.0) < 1e-4 for n in r["norms"]), r


def test_embeddings_float_and_base64_explicit(client):
    f = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"], encoding_format="float")
    for d in f.data:
        _unit_nonzero(d.embedding, 1536)
    b = client.embeddings.create(model="text-embedding-3-large", input="a", encoding_format="base64", dimensions=256)
    raw = b.data[0].embedding
    assert isinstance(raw, str)  # asked for explicitly: handed over undecoded
    _unit_nonzero(list(struct.unpack("<256f", base64.b64decode(raw))), 256)


def test_embeddings_dimensions_above_the_model_width_is_a_bad_request(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="text-embedding-3-small", input="a", dimensions=4096)
    assert info.value.param == "dimensions"


@pytest.fixture(scope="module")
def strict(openai_url):
    """A client that validates every response against the SDK's types."""
    return openai.OpenAI(base_url=openai_url + "/v1", api_key="sk-chaosgate-test", max_retries=0, timeout=5.0,
                         _strict_response_validation=True)


def test_models_list(strict):
    models = list(strict.models.list())
    assert models
    assert all(isinstance(m.id, str) and m.id for m in models)
    assert all(m.object == "model" for m in models)
    assert not any(m.id.startswith("claude") for m in models)


def test_models_retrieve(strict):
    ids = [m.id for m in strict.models.list()]
    m = strict.models.retrieve(ids[0])
    assert m.id == ids[0] and m.object == "model"
    with pytest.raises(openai.NotFoundError) as info:
        strict.models.retrieve("gpt-0-nonexistent")
    assert info.value.code == "model_not_found"


def test_n_2_plain_and_streamed(strict):
    r = strict.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=4, n=2)
    assert [c.index for c in r.choices] == [0, 1]
    texts = [c.message.content for c in r.choices]
    assert texts[0] != texts[1] and all(len(t.split()) == 4 for t in texts)
    assert r.usage.completion_tokens == 8
    streamed = {0: "", 1: ""}
    for chunk in strict.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=4, n=2, stream=True):
        for c in chunk.choices:
            streamed[c.index] += c.delta.content or ""
    assert [streamed[0], streamed[1]] == texts


def test_max_tokens_too_large_is_a_bad_request(client):
    with pytest.raises(openai.BadRequestError) as info:
        chat(client, 4294967296)
    assert info.value.code == "invalid_value"
    assert info.value.param == "max_tokens"
    assert "4294967296" in info.value.message


# --- forced HTTP errors ----------------------------------------------------------------

# value, SDK class (exact), status, error.type, error.code
FORCED = [
    ("status=429", openai.RateLimitError, 429, "requests", "rate_limit_exceeded"),
    ("status=429,kind=insufficient_quota", openai.RateLimitError, 429, "insufficient_quota", "insufficient_quota"),
    ("status=500", openai.InternalServerError, 500, "server_error", None),
    ("status=401", openai.AuthenticationError, 401, "invalid_request_error", "invalid_api_key"),
    # The openai SDK has no class for 529: every status >= 500 maps to InternalServerError.
    ("status=529", openai.InternalServerError, 529, "server_error", None),
]


@pytest.mark.parametrize("value,exc_class,status,etype,code", FORCED, ids=[f[0] for f in FORCED])
def test_forced_error_raises_the_sdk_class(client, value, exc_class, status, etype, code):
    with pytest.raises(openai.APIStatusError) as info:
        chat(client, 3, extra_headers=fault(value))
    e = info.value
    assert type(e) is exc_class
    assert e.status_code == status
    # The SDK hands over the inner `error` object of {"error": {message, type, param, code}}.
    assert set(e.body) >= {"message", "type", "param", "code"}
    assert e.body["type"] == etype and e.type == etype
    assert e.body["code"] == code and e.code == code
    assert isinstance(e.body["message"], str) and e.body["message"]
    assert set(e.response.json()) == {"error"}


def test_forced_error_on_a_stream_raises_before_any_chunk(client):
    with pytest.raises(openai.RateLimitError) as info:
        chat(client, 3, stream=True, extra_headers=fault("status=429"))
    assert info.value.status_code == 429


# --- faults inside a 200 stream --------------------------------------------------------


def test_inband_error_raises_api_error_after_the_tokens(client):
    """`data: {"error": {...}}` inside the stream: the SDK raises the bare openai.APIError
    (no status: the HTTP status was 200) with the inner error object as body."""
    state, exc = drain(chat(client, 20, stream=True, extra_headers=fault("error_after=3")))
    assert type(exc) is openai.APIError
    assert not isinstance(exc, openai.APIStatusError)
    assert len(state["pieces"]) == 3
    assert state["finish"] == []
    assert isinstance(exc.body, dict) and exc.body["type"] == "server_error"
    assert exc.message == exc.body["message"]


def test_cut_stream_raises_connection_error_after_exactly_the_tokens(client):
    """cut_after=5 closes the connection without [DONE], finish chunk or chunked
    terminator. openai 3.x does NOT just end the iteration: its stream reader wraps the
    transport's RemoteProtocolError ("incomplete chunked read") in APIConnectionError,
    after yielding exactly the 5 content pieces."""
    state, exc = drain(chat(client, 20, stream=True, stream_options={"include_usage": True},
                            extra_headers=fault("cut_after=5")))
    assert type(exc) is openai.APIConnectionError
    assert isinstance(exc.__cause__, httpx2.RemoteProtocolError)
    assert "incomplete chunked read" in str(exc.__cause__)
    assert len(state["pieces"]) == 5
    assert state["finish"] == []
    assert state["usage"] == []


def test_no_terminal_stream_ends_silently(client):
    """no_terminal: every token, the finish chunk and usage, but no `data: [DONE]`, then a
    clean end of body. The SDK ends the iteration with no error: a missing [DONE] is
    invisible to an application using it."""
    state, exc = drain(chat(client, 4, stream=True, stream_options={"include_usage": True},
                            extra_headers=fault("no_terminal")))
    assert exc is None
    assert len(state["pieces"]) == 4
    assert state["finish"] == ["length"]
    assert [u.completion_tokens for u in state["usage"]] == [4]


def test_malformed_chunk_escapes_as_json_decode_error(client):
    """A chunk with truncated JSON: the SDK's `sse.json()` raises json.JSONDecodeError
    straight through; it is not an openai.OpenAIError."""
    state, exc = drain(chat(client, 20, stream=True, extra_headers=fault("malformed_after=2")))
    assert isinstance(exc, json.JSONDecodeError)
    assert not isinstance(exc, openai.OpenAIError)
    assert len(state["pieces"]) == 2
    assert state["finish"] == []


# --- latency faults --------------------------------------------------------------------


def test_delay_still_answers(client):
    t0 = time.monotonic()
    r = chat(client, 3, extra_headers=fault("delay=200ms"))
    assert time.monotonic() - t0 >= 0.2
    assert len(r.choices[0].message.content.split()) == 3


def test_hang_raises_timeout_error(client):
    t0 = time.monotonic()
    with pytest.raises(openai.APITimeoutError) as info:
        client.with_options(timeout=0.5).chat.completions.create(
            model=MODEL, messages=MSGS, max_tokens=3, extra_headers=fault("hang")
        )
    assert 0.4 <= time.monotonic() - t0 < 3.0
    assert isinstance(info.value, openai.APIConnectionError)  # APITimeoutError's base
    assert isinstance(info.value.__cause__, httpx2.TimeoutException)
