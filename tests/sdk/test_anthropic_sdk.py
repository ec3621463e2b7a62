"""The official anthropic SDK against `chaosgate mock --api anthropic`."""
import anthropic
import pytest

MSGS = [{"role": "user", "content": "Say something."}]


def fault(value):
    return {"x-chaosgate-fault": value}


@pytest.fixture()
def client(anthropic_url):
    return anthropic.Anthropic(base_url=anthropic_url, api_key="sk-ant-chaos", max_retries=0, timeout=5.0)


def plain_text(client, n):
    m = client.messages.create(model="claude-3-5-sonnet-20241022", max_tokens=n, messages=MSGS)
    return m


def test_plain_message(client):
    m = plain_text(client, 7)
    assert m.model == "claude-3-5-sonnet-20241022"
    assert len(m.content[0].text.split()) == 7
    assert m.usage.output_tokens == 7 and m.usage.input_tokens >= 1
    assert m.stop_reason == "max_tokens"


def test_stream_helper_reassembles(client):
    want = plain_text(client, 10).content[0].text
    with client.messages.stream(model="claude-3-5-sonnet-20241022", max_tokens=10, messages=MSGS) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == want
    assert final.usage.output_tokens == 10


def test_raw_stream_events(client):
    kinds = [
        e.type
        for e in client.messages.create(model="claude-3-5-sonnet-20241022", max_tokens=3, messages=MSGS, stream=True)
    ]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert kinds.count("content_block_delta") == 3


@pytest.mark.parametrize(
    "value,exc,status,etype",
    [
        ("status=429", anthropic.RateLimitError, 429, "rate_limit_error"),
        ("status=500", anthropic.InternalServerError, 500, "api_error"),
        ("status=401", anthropic.AuthenticationError, 401, "authentication_error"),
        ("status=529", anthropic.OverloadedError, 529, "overloaded_error"),
    ],
)
def test_forced_errors_raise_the_sdk_classes(client, value, exc, status, etype):
    with pytest.raises(exc) as info:
        client.messages.create(
            model="claude-3-5-sonnet-20241022", max_tokens=3, messages=MSGS, extra_headers=fault(value)
        )
    assert info.value.status_code == status
    assert info.value.body["error"]["type"] == etype


def test_inband_stream_error_raises_after_some_text(client):
    """`event: error` inside a 200 stream: this SDK raises a plain APIStatusError (the
    (status, code) table has no entry for a 200) carrying the overloaded_error body."""
    got = ""
    with pytest.raises(anthropic.APIStatusError) as info:
        with client.messages.stream(
            model="claude-3-5-sonnet-20241022", max_tokens=20, messages=MSGS, extra_headers=fault("error_after=3")
        ) as s:
            for t in s.text_stream:
                got += t
    assert len(got.split()) == 3
    assert info.value.body["error"]["type"] == "overloaded_error"


def test_cut_stream_is_not_a_clean_end(client):
    """A cut stream: the SDK yields the 5 pieces, then its HTTP layer raises
    RemoteProtocolError ("incomplete chunked read") — not an anthropic.APIError, which
    is exactly how gateways and apps end up missing it."""
    got = ""
    with pytest.raises(Exception, match="incomplete chunked read") as info:
        with client.messages.stream(
            model="claude-3-5-sonnet-20241022", max_tokens=20, messages=MSGS, extra_headers=fault("cut_after=5")
        ) as s:
            for t in s.text_stream:
                got += t
            s.get_final_message()
    assert len(got.split()) == 5
    assert not isinstance(info.value, anthropic.APIError)
