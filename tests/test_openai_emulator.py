"""The OpenAI emulator driven by the real ``openai`` 3.52 client (and by raw requests for the wire details).

Also pins the client's own retry behaviour (``openai/_base_client.py``), which the app inherits:

* ``max_retries`` defaults to 2 (``DEFAULT_MAX_RETRIES``): up to 3 attempts. Retried: connection errors and
  timeouts, and statuses 408, 409, 429 and >= 500; a response header ``x-should-retry: true|false`` overrides.
  Every attempt carries ``x-stainless-retry-count: <n>``.
* Wait: ``retry-after-ms`` (ms) or ``Retry-After`` (float seconds or HTTP date) when 0 < value <= 120 s;
  a Retry-After ABOVE 120 s means no retry at all (the error is raised at once); otherwise
  ``min(0.5 * 2 ** n, 8.0) * (1 - 0.25 * random())`` with n = retries already taken (~0.5 s, ~1 s, ...).
* Disable with ``OpenAI(max_retries=0)`` or per call ``client.with_options(max_retries=0)``; the final error is
  ``RateLimitError`` (429), ``InternalServerError`` (>= 500), ``AuthenticationError`` (401, never retried).
"""
from __future__ import annotations

import time

import openai
import pytest
import requests

from tests.emulators.openai_api import INSUFFICIENT_QUOTA_ERROR, OpenAIEmulator, parse_album_prompt

PROMPT = 'Write a short description of the album "Abbey Road" by The Beatles in French.'


@pytest.fixture
def fm():
    with OpenAIEmulator() as emulator:
        yield emulator


def _ask(client, prompt: str = PROMPT, **kwargs):
    return client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "You write short record-shop blurbs."},
                  {"role": "user", "content": prompt}], **kwargs)


def test_chat_completion_with_the_real_client(fm):
    client = openai.OpenAI(base_url=fm.url + "/v1", api_key="test-ai-key", max_retries=0)
    completion = _ask(client)
    text = completion.choices[0].message.content
    assert text.startswith("Description of Abbey Road by The Beatles in French: ")
    assert text == _ask(client).choices[0].message.content  # deterministic
    assert completion.object == "chat.completion" and completion.model == "gpt-4o-mini"
    assert completion.choices[0].finish_reason == "stop" and completion.choices[0].message.role == "assistant"
    assert completion.id.startswith("chatcmpl-") and completion.created > 1_700_000_000
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    recorded = fm.completions[0]
    assert (recorded["album"], recorded["artist"], recorded["language"]) == ("Abbey Road", "The Beatles", "French")
    assert recorded["prompt"] == PROMPT and recorded["model"] == "gpt-4o-mini"
    request = fm.requests[0]
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == "Bearer test-ai-key"
    assert request.json["messages"][-1] == {"role": "user", "content": PROMPT}
    assert fm.count("/v1/chat/completions") == 2 and fm.count() == 2  # nothing else was called


def test_reply_follows_the_prompt(fm):
    client = fm.client()
    other = _ask(client, "Album: Kind of Blue\nArtist: Miles Davis\nLanguage: de").choices[0].message.content
    assert other.startswith("Description of Kind of Blue by Miles Davis in German: ")
    no_language = _ask(client, "Describe the album OK Computer by Radiohead.").choices[0].message.content
    assert no_language.startswith("Description of OK Computer by Radiohead: ")
    assert _ask(client, "hello").choices[0].message.content == "Emulated reply to: hello"


def test_reply_with_forces_the_text(fm):
    client = fm.client()
    fm.reply_with("Un album mythique.")
    assert _ask(client).choices[0].message.content == "Un album mythique."
    fm.reply_with(lambda messages, parsed: f"{parsed['artist']} / {len(messages)}")
    assert _ask(client).choices[0].message.content == "The Beatles / 2"
    fm.reply_with(None)
    assert _ask(client).choices[0].message.content.startswith("Description of Abbey Road")
    assert [c["reply"] for c in fm.completions][:2] == ["Un album mythique.", "The Beatles / 2"]


def test_streaming(fm):
    stream = _ask(fm.client(), stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Description of Abbey Road by The Beatles in French: ")
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens == len(text.split())


def test_models(fm):
    client = fm.client()
    assert [m.id for m in client.models.list()] == ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-4.1"]
    assert client.models.retrieve("gpt-4o").owned_by == "system"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-0")


def test_wrong_or_missing_key_is_401_in_openai_shape(fm):
    with pytest.raises(openai.AuthenticationError) as caught:
        _ask(fm.client(api_key="sk-not-the-right-key", max_retries=2))
    assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"
    assert fm.count() == 1  # 401 is never retried
    answer = requests.post(fm.base_url + "/chat/completions", json={"model": "m", "messages": []}, timeout=5)
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"


def test_malformed_requests(fm):
    headers = {"Authorization": "Bearer test-ai-key"}
    url = fm.base_url + "/chat/completions"
    assert requests.post(url, data="nope", headers=headers, timeout=5).status_code == 400
    missing = requests.post(url, json={"model": "m"}, headers=headers, timeout=5).json()["error"]
    assert (missing["param"], missing["code"]) == ("messages", "missing_required_parameter")
    assert requests.post(url, json={"messages": [{"role": "user", "content": "x"}]}, headers=headers,
                         timeout=5).status_code == 400
    unknown = requests.get(fm.base_url + "/embeddings", headers=headers, timeout=5)
    assert unknown.status_code == 404 and unknown.json()["error"]["message"] == "Invalid URL (GET /v1/embeddings)"


# ----------------------------------------------------------------------------- 429 / 5xx and retries
def test_429_without_retries_raises_rate_limit_error_with_retry_after(fm):
    fm.fail_next(1, status=429, retry_after=20)
    with pytest.raises(openai.RateLimitError) as caught:
        _ask(fm.client(max_retries=0))  # raised at once: the one request below is all it sent
    assert caught.value.status_code == 429 and caught.value.code == "rate_limit_exceeded"
    assert caught.value.response.headers["retry-after"] == "20"
    assert fm.count() == 1


def test_default_client_retries_429_honouring_retry_after(fm):
    client = fm.client(max_retries=openai.DEFAULT_MAX_RETRIES)
    assert openai.DEFAULT_MAX_RETRIES == 2
    fm.fail_next(2, status=429, retry_after=1.2)
    assert _ask(client).choices[0].message.content.startswith("Description of Abbey Road")
    times = [r.time for r in fm.requests]  # arrivals, on the emulator's clock
    assert len(times) == 3
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    # Never back before the 1.2 s asked for: its own backoff (0.5 s, then 1 s) would have been.
    assert all(gap >= 1.15 for gap in gaps), gaps
    assert [r.headers["x-stainless-retry-count"] for r in fm.requests] == ["0", "1", "2"]
    # one more failure than max_retries: the 429 comes out
    fm.reset_counters()
    fm.fail_next(3, status=429, headers={"retry-after-ms": "50"})
    with pytest.raises(openai.RateLimitError):
        _ask(client)
    assert fm.count() == 3


def test_retry_after_above_two_minutes_is_not_retried(fm):
    fm.fail_next(1, status=429, retry_after=121)
    with pytest.raises(openai.RateLimitError):
        _ask(fm.client(max_retries=2))
    assert fm.count() == 1


def test_5xx_are_retried_with_exponential_backoff(fm):
    fm.fail_next(3, status=500)
    with pytest.raises(openai.InternalServerError) as caught:
        _ask(fm.client(max_retries=2))
    assert fm.count() == 3
    times = [r.time for r in fm.requests]  # arrivals, on the emulator's clock
    first_wait, second_wait = times[1] - times[0], times[2] - times[1]
    # ~0.5 s then ~1 s (jitter takes up to 25 % off): the second is longer than any first could be.
    assert first_wait >= 0.5 * 0.75 - 0.02 and second_wait >= 1.0 * 0.75 - 0.02 > 0.5, (first_wait, second_wait)
    assert caught.value.status_code == 500 and caught.value.type == "server_error"
    fm.reset_counters()
    fm.fail_next(1, status=503, headers={"x-should-retry": "false"})
    with pytest.raises(openai.InternalServerError):
        _ask(fm.client(max_retries=2))
    assert fm.count() == 1  # the server said not to


def test_per_call_retry_override_and_quota_errors(fm):
    client = fm.client(max_retries=2)
    fm.fail_next(1, status=429, body=INSUFFICIENT_QUOTA_ERROR)
    with pytest.raises(openai.RateLimitError) as caught:
        _ask(client.with_options(max_retries=0))
    assert caught.value.code == "insufficient_quota" and fm.count() == 1


def test_parse_album_prompt():
    assert parse_album_prompt("Describe «Sgt. Pepper's Lonely Hearts Club Band» by The Beatles, in German") == {
        "album": "Sgt. Pepper's Lonely Hearts Club Band", "artist": "The Beatles", "language": "German"}
    assert parse_album_prompt('Describe "Déjà Vu" by "Crosby, Stills, Nash & Young" (language: fr-FR)')[
        "artist"] == "Crosby, Stills, Nash & Young"
    assert parse_album_prompt("Album: Kind of Blue\nArtist: Miles Davis\nLanguage: es") == {
        "album": "Kind of Blue", "artist": "Miles Davis", "language": "Spanish"}
    assert parse_album_prompt("hello") == {"album": None, "artist": None, "language": None}


def test_language_from_the_system_message(fm):
    client = fm.client()
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=[
        {"role": "system", "content": "Always answer in Italian."},
        {"role": "user", "content": 'Describe "OK Computer" by Radiohead.'}])
    assert completion.choices[0].message.content.startswith("Description of OK Computer by Radiohead in Italian: ")


def test_latency_and_counters(fm):
    fm.latency = 0.2
    started = time.monotonic()
    _ask(fm.client())
    assert time.monotonic() - started >= 0.2
    fm.latency = 0
    assert fm.count("/v1/chat") == 1 and fm.count("/v1/models") == 0
    fm.reset_counters()
    assert fm.count() == 0 and fm.completions == []
