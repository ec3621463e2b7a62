"""The official openai SDK against `chaosgate mock --api openai`."""
import openai
import pytest

MSGS = [{"role": "user", "content": "Say something."}]


def fault(value):
    return {"x-chaosgate-fault": value}


@pytest.fixture()
def client(openai_url):
    return openai.OpenAI(base_url=openai_url + "/v1", api_key="sk-chaos", max_retries=0, timeout=5.0)


def test_plain_chat(client):
    r = client.chat.completions.create(model="gpt-4o", messages=MSGS, max_tokens=12)
    assert r.model == "gpt-4o"
    assert r.choices[0].message.content.split() and len(r.choices[0].message.content.split()) == 12
    assert r.usage.completion_tokens == 12
    assert r.usage.total_tokens == r.usage.prompt_tokens + 12


def test_streamed_text_reassembles_with_usage(client):
    plain = client.chat.completions.create(model="gpt-4o", messages=MSGS, max_tokens=9).choices[0].message.content
    text, usage, finish = "", None, None
    for chunk in client.chat.completions.create(
        model="gpt-4o", messages=MSGS, max_tokens=9, stream=True, stream_options={"include_usage": True}
    ):
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert text == plain
    assert finish == "length"
    assert usage is not None and usage.completion_tokens == 9


def test_embeddings_and_models(client):
    e = client.embeddings.create(model="text-embedding-3-small", input=["a", "b", "c"], dimensions=16)
    assert len(e.data) == 3 and len(e.data[2].embedding) == 16
    ids = [m.id for m in client.models.list()]
    assert "gpt-4o" in ids


@pytest.mark.parametrize(
    "value,exc,status,etype",
    [
        ("status=429", openai.RateLimitError, 429, "requests"),
        ("status=429,kind=insufficient_quota", openai.RateLimitError, 429, "insufficient_quota"),
        ("status=500", openai.InternalServerError, 500, "server_error"),
        ("status=401", openai.AuthenticationError, 401, "invalid_request_error"),
        ("status=529", openai.InternalServerError, 529, "server_error"),
    ],
)
def test_forced_errors_raise_the_sdk_classes(client, value, exc, status, etype):
    with pytest.raises(exc) as info:
        client.chat.completions.create(model="gpt-4o", messages=MSGS, max_tokens=3, extra_headers=fault(value))
    assert info.value.status_code == status
    assert info.value.body["type"] == etype


def test_inband_stream_error_raises_api_error(client):
    got = ""
    with pytest.raises(openai.APIError) as info:
        for chunk in client.chat.completions.create(
            model="gpt-4o", messages=MSGS, max_tokens=20, stream=True, extra_headers=fault("error_after=3")
        ):
            if chunk.choices:
                got += chunk.choices[0].delta.content or ""
    assert len(got.split()) == 3
    assert not isinstance(info.value, openai.APIStatusError)


def test_cut_stream_surfaces_as_a_connection_error(client):
    """A stream cut mid-body (no [DONE], no chunked terminator) is not a clean end:
    the SDK yields the 5 pieces, then raises APIConnectionError."""
    pieces, finish = [], None
    with pytest.raises(openai.APIConnectionError):
        for chunk in client.chat.completions.create(
            model="gpt-4o", messages=MSGS, max_tokens=20, stream=True, extra_headers=fault("cut_after=5")
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
            if chunk.choices and chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
    assert len(pieces) == 5
    assert finish is None
