"""A local emulator of the OpenAI REST API (chat completions and models), answering OpenAI's JSON.

Nothing here contacts the real OpenAI. The real ``openai`` client (3.52) is pointed at it with ``base_url``::

    with OpenAIEmulator() as fm:                     # api key "test-ai-key"
        client = openai.OpenAI(base_url=fm.base_url, api_key="test-ai-key", max_retries=0)   # base_url = <url>/v1
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=[
            {"role": "user", "content": 'Describe the album "Abbey Road" by The Beatles in French.'}])
        reply.choices[0].message.content  # 'Description of Abbey Road by The Beatles in French: ...'

(``OPENAI_BASE_URL`` in the environment is used when ``base_url`` is not passed; :meth:`OpenAIEmulator.client`
builds such a client, with ``max_retries=0`` unless told otherwise.)

Endpoints (every one needs ``Authorization: Bearer <api_key>``; otherwise 401):

* ``POST /v1/chat/completions``: a ``chat.completion`` object (one choice, ``finish_reason "stop"``, usage
  counted in words), or with ``"stream": true`` a ``text/event-stream`` of ``chat.completion.chunk`` objects
  ending with ``data: [DONE]`` (a usage chunk too when ``stream_options.include_usage``). The reply text is
  :meth:`OpenAIEmulator.reply_with`'s when one is set, otherwise derived from the LAST user message by
  :func:`parse_album_prompt`::

      "Description of <album> by <artist> in <language>: <album> is a record by <artist>. [emulated <8 hex>]"

  (`` in <language>`` is left out when the prompt names none; when no album/artist is found the reply is
  ``"Emulated reply to: <first 60 characters of the prompt>"``). Each call is recorded in ``completions``.
* ``GET /v1/models``, ``GET /v1/models/{id}``.

Errors are OpenAI's ``{"error": {"message", "type", "param", "code"}}``: 401 ``invalid_api_key``, 400
``invalid_request_error`` for a malformed body, 404 for unknown paths/models. Faults come from
:meth:`fail_next` (e.g. ``fail_next(2, status=429, retry_after=1)``, ``fail_next(1, status=500)``), answered with
OpenAI's bodies for that status (``rate_limit_exceeded``, ``server_error`` ...); pass
``body=INSUFFICIENT_QUOTA_ERROR`` for the quota flavour of 429.

The openai client's own retrying (see ``openai/_base_client.py``): ``max_retries`` (default 2, i.e. up to 3
attempts) on connection errors/timeouts and on 408, 409, 429 and every 5xx (``x-should-retry: true|false``
overrides). The wait is ``retry-after-ms`` (milliseconds) or ``Retry-After`` (float seconds, or an HTTP date)
when 0 < value <= 120 s; a Retry-After above 120 s means NO retry at all; otherwise exponential backoff
``min(0.5 * 2**n, 8) * (1 - 0.25 * random())`` (n = retries already taken: ~0.5 s then ~1 s). Disable with
``OpenAI(max_retries=0)`` or per call with ``client.with_options(max_retries=0)``.
"""
from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
import typing

from .spotify import Answer, JsonServiceEmulator, RecordedRequest

__all__ = ["INSUFFICIENT_QUOTA_ERROR", "OpenAIEmulator", "parse_album_prompt"]

DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-4.1")

INSUFFICIENT_QUOTA_ERROR = {"error": {
    "message": "You exceeded your current quota, please check your plan and billing details.",
    "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}}

_FAULT_ERRORS = {
    400: ("Bad request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to access this resource.", "invalid_request_error", None),
    404: ("Not found.", "invalid_request_error", None),
    408: ("Request timed out.", "timeout", None),
    409: ("Conflict.", "invalid_request_error", None),
    429: ("Rate limit reached for requests. Please try again later.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The server is overloaded or not ready yet.", "server_error", None),
    504: ("Gateway timeout.", "server_error", None),
}

LANGUAGE_CODES = {
    "en": "English", "fr": "French", "de": "German", "es": "Spanish", "it": "Italian", "pt": "Portuguese",
    "nl": "Dutch", "sv": "Swedish", "da": "Danish", "no": "Norwegian", "fi": "Finnish", "pl": "Polish",
    "ru": "Russian", "ja": "Japanese", "zh": "Chinese", "ko": "Korean", "ar": "Arabic", "tr": "Turkish",
}
_LANGUAGE_NAMES = {name.casefold(): name for name in LANGUAGE_CODES.values()} | {
    "français": "French", "francais": "French", "deutsch": "German", "español": "Spanish",
    "espanol": "Spanish", "italiano": "Italian", "português": "Portuguese",
}

_Q_OPEN, _Q_CLOSE = "\"'“‘«", "\"'”’»"
_KV = r"^[ \t>*\-]*{key}[ \t]*[:=][ \t]*[{o}]?(?P<v>[^\n]*?)[{c}]?[ \t.]*$"
_KV_ALBUM = re.compile(_KV.format(key=r"(?:album|album title|title|record)", o=_Q_OPEN, c=_Q_CLOSE),
                       re.IGNORECASE | re.MULTILINE)
_KV_ARTIST = re.compile(_KV.format(key=r"(?:artist|artists|band|performer)", o=_Q_OPEN, c=_Q_CLOSE),
                        re.IGNORECASE | re.MULTILINE)
_KV_LANGUAGE = re.compile(_KV.format(key=r"(?:language|lang|locale)", o=_Q_OPEN, c=_Q_CLOSE),
                          re.IGNORECASE | re.MULTILINE)
_QUOTED = r"\"[^\"\n]+\"|“[^”\n]+”|«[^»\n]+»|‘[^’\n]+’|'[^'\n]+'"
_LANGUAGE_ALTERNATION = "|".join(sorted((re.escape(n) for n in _LANGUAGE_NAMES), key=len, reverse=True))
# an unquoted artist runs to " in <known language>", "(", punctuation followed by a space, or the end of the line
_ARTIST_END = rf"(?=\s+in\s+(?:{_LANGUAGE_ALTERNATION})\b|\s*\(|[.,;:!?](?:\s|$)|[ \t]*$|\n)"
_QUOTED_BY = re.compile(
    rf"(?P<album>{_QUOTED}),?\s+(?:by|from|de|von|di)\s+(?:(?P<qartist>{_QUOTED})|(?P<artist>[^\n]+?){_ARTIST_END})",
    re.IGNORECASE | re.MULTILINE)
_PLAIN_BY = re.compile(rf"\balbum\s+(?P<album>[^\n]+?)\s+by\s+(?P<artist>[^\n]+?){_ARTIST_END}",
                       re.IGNORECASE | re.MULTILINE)
_IN_LANGUAGE = re.compile(r"\bin\s+(?P<lang>[A-Za-zÀ-ÿ]+)\b")


def _language_name(raw: str | None) -> str | None:
    if not raw:
        return None
    value = raw.strip().strip(_Q_OPEN + _Q_CLOSE + " .")
    if not value:
        return None
    code = value.replace("_", "-").split("-")[0].casefold()
    if code in LANGUAGE_CODES and len(value) <= 5:
        return LANGUAGE_CODES[code]
    return _LANGUAGE_NAMES.get(value.casefold(), value[:1].upper() + value[1:])


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] in _Q_OPEN and value[-1] in _Q_CLOSE:
        value = value[1:-1]
    return value.strip()


def parse_album_prompt(text: str) -> dict:
    """Find album, artist and language in a prompt: ``{"album", "artist", "language"}`` (None when absent).

    Understood, in this order: ``Album: X`` / ``Artist: Y`` / ``Language: fr`` lines; ``"X" by Y`` (X in
    ``"..."``, ``“...”``, ``«...»``, ``‘...’`` or ``'...'``; Y quoted the same way, or running up to
    `` in <known language>``, ``(``, punctuation followed by a space, or the end of the line: so quote artists
    such as "Crosby, Stills & Nash"); ``album X by Y`` (unquoted, same end rule). The language is a ``Language:`` line (codes like ``fr``/``fr-FR`` become names) or the
    first ``in <Language>`` naming a known language.
    """
    text = text or ""
    album = artist = language = None
    if (m := _KV_ALBUM.search(text)) and m.group("v").strip():
        album = m.group("v").strip()
    if (m := _KV_ARTIST.search(text)) and m.group("v").strip():
        artist = m.group("v").strip()
    if album is None or artist is None:
        m = _QUOTED_BY.search(text) or _PLAIN_BY.search(text)
        if m:
            album = album or _unquote(m.group("album"))
            found_artist = m.groupdict().get("qartist") or m.group("artist")
            artist = artist or (_unquote(found_artist) if found_artist else None)
    if (m := _KV_LANGUAGE.search(text)) and m.group("v").strip():
        language = _language_name(m.group("v"))
    else:
        for m in _IN_LANGUAGE.finditer(text):
            if m.group("lang").casefold() in _LANGUAGE_NAMES:
                language = _LANGUAGE_NAMES[m.group("lang").casefold()]
                break
    return {"album": album or None, "artist": artist or None, "language": language}


def _message_text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return "\n".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _error(message: str, type_: str = "invalid_request_error", param: str | None = None,
           code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _word_count(text: str) -> int:
    return len(text.split())


class OpenAIEmulator(JsonServiceEmulator):
    """OpenAI API look-alike on ``127.0.0.1:<random port>``; see the module docstring for semantics.

    * URLs: :attr:`url` (``http://127.0.0.1:<port>``), :attr:`base_url` (``<url>/v1``, for ``OpenAI(base_url=)``).
    * Replies: :meth:`reply_with` (a fixed text, a callable, or None to go back to derived replies);
      ``completions`` lists every answered chat completion as a dict (model, messages, prompt, album, artist,
      language, reply, stream).
    * Models: ``models`` (ids listed by ``GET /v1/models``); any model name is accepted by chat completions
      unless ``strict_models=True`` (then unknown ones answer 404 ``model_not_found``).
    * Faults and instrumentation (from :class:`~tests.emulators.spotify.JsonServiceEmulator`):
      :meth:`fail_next`, ``latency``, ``requests``, :meth:`count`, :meth:`reset_counters`.
    """

    thread_name = "openai-emulator"

    def __init__(self, api_key: str = "test-ai-key", *, latency: float = 0.0,
                 models: typing.Iterable[str] = DEFAULT_MODELS, strict_models: bool = False):
        super().__init__(latency=latency)
        self.api_key = api_key
        self.models = list(models)
        self.strict_models = strict_models
        self._reply: str | typing.Callable | None = None
        self._completions: list[dict] = []
        self._serial = 0

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def client(self, **kwargs):
        """A real ``openai.OpenAI`` on :attr:`base_url` (``max_retries=0`` and ``timeout=10`` unless given)."""
        import openai

        kwargs.setdefault("api_key", self.api_key)
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 10.0)
        return openai.OpenAI(base_url=self.base_url, **kwargs)

    def reply_with(self, text: str | typing.Callable[[list[dict], dict], str] | None) -> None:
        """Force the reply of every following chat completion: a string, or ``callable(messages, parsed)``
        returning one (``parsed`` is :func:`parse_album_prompt`'s result); None restores derived replies."""
        with self._lock:
            self._reply = text

    @property
    def completions(self) -> list[dict]:
        with self._lock:
            return [dict(c) for c in self._completions]

    def reset_counters(self) -> None:
        """Forget recorded requests and completions."""
        with self._lock:
            super().reset_counters()
            self._completions.clear()

    # ----------------------------------------------------------------- serving
    def _fault_payload(self, status: int, request: RecordedRequest):
        message, type_, code = _FAULT_ERRORS.get(status, ("Error.", "server_error" if status >= 500 else
                                                          "invalid_request_error", None))
        return _error(message, type_, None, code)

    def _route(self, request: RecordedRequest) -> Answer:
        request_id = "req_" + secrets.token_hex(16)
        answer = self._dispatch(request)
        return answer._replace(headers={"x-request-id": request_id, "openai-version": "2020-10-01",
                                        "openai-processing-ms": "1", **answer.headers})

    def _dispatch(self, request: RecordedRequest) -> Answer:
        path = request.path.rstrip("/")
        auth = request.headers.get("authorization", "")
        scheme, _, key = auth.partition(" ")
        if not auth or scheme.lower() != "bearer" or not key.strip():
            return Answer(401, _error(
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You can obtain an API key from "
                "https://platform.openai.com/account/api-keys."))
        key = key.strip()
        if key != self.api_key:
            masked = key[:3] + "*" * max(0, len(key) - 7) + key[-4:] if len(key) > 7 else "*" * len(key)
            return Answer(401, _error(f"Incorrect API key provided: {masked}. You can find your API key at "
                                      "https://platform.openai.com/account/api-keys.", code="invalid_api_key"))
        if path == "/v1/chat/completions" and request.method == "POST":
            return self._chat(request)
        if path == "/v1/models" and request.method == "GET":
            return Answer(200, {"object": "list", "data": [self._model(m) for m in self.models]})
        if path.startswith("/v1/models/") and request.method == "GET":
            model = path[len("/v1/models/"):]
            if model not in self.models:
                return Answer(404, _error(f"The model '{model}' does not exist", param="model",
                                          code="model_not_found"))
            return Answer(200, self._model(model))
        return Answer(404, _error(f"Invalid URL ({request.method} {request.path})"))

    @staticmethod
    def _model(model_id: str) -> dict:
        return {"id": model_id, "object": "model", "created": 1_700_000_000, "owned_by": "system"}

    def _chat(self, request: RecordedRequest) -> Answer:
        body = request.json
        if not isinstance(body, dict):
            return Answer(400, _error("We could not parse the JSON body of your request. (HINT: This likely means "
                                      "you aren't using your HTTP library correctly. The OpenAI API expects a "
                                      "JSON payload, but what was sent was not valid JSON."))
        model = body.get("model")
        if not model or not isinstance(model, str):
            return Answer(400, _error("you must provide a model parameter"))
        messages = body.get("messages")
        if messages is None:
            return Answer(400, _error("Missing required parameter: 'messages'.", param="messages",
                                      code="missing_required_parameter"))
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            return Answer(400, _error("Invalid 'messages': expected a non-empty array of message objects.",
                                      param="messages", code="invalid_value"))
        if self.strict_models and model not in self.models:
            return Answer(404, _error(f"The model `{model}` does not exist or you do not have access to it.",
                                      code="model_not_found"))
        user_texts = [_message_text(m) for m in messages if m.get("role") == "user"]
        prompt = user_texts[-1] if user_texts else ""
        parsed = parse_album_prompt(prompt)
        if parsed["language"] is None:  # a language given only in the system/developer message
            for m in messages:
                if m.get("role") in ("system", "developer"):
                    language = parse_album_prompt(_message_text(m))["language"]
                    if language:
                        parsed["language"] = language
                        break
        with self._lock:
            forced = self._reply
            self._serial += 1
            serial = self._serial
        if callable(forced):
            reply = str(forced(messages, dict(parsed)))
        elif forced is not None:
            reply = forced
        else:
            reply = self._derived_reply(model, prompt, parsed)
        stream = bool(body.get("stream"))
        with self._lock:
            self._completions.append({"model": model, "messages": messages, "prompt": prompt, **parsed,
                                      "reply": reply, "stream": stream})
        completion_id = f"chatcmpl-emu{serial:06d}"
        created = int(time.time())
        prompt_tokens = sum(_word_count(_message_text(m)) + 4 for m in messages)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": _word_count(reply),
                 "total_tokens": prompt_tokens + _word_count(reply)}
        if stream:
            return self._stream(completion_id, created, model, reply, usage, body)
        return Answer(200, {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply, "refusal": None,
                                                 "annotations": []},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": "fp_emulator",
        })

    @staticmethod
    def _derived_reply(model: str, prompt: str, parsed: dict) -> str:
        album, artist, language = parsed["album"], parsed["artist"], parsed["language"]
        if not (album and artist):
            return f"Emulated reply to: {prompt[:60]}"
        digest = hashlib.sha256(f"{album}|{artist}|{language}".casefold().encode()).hexdigest()[:8]
        where = f" in {language}" if language else ""
        return f"Description of {album} by {artist}{where}: {album} is a record by {artist}. [emulated {digest}]"

    @staticmethod
    def _stream(completion_id: str, created: int, model: str, reply: str, usage: dict, body: dict) -> Answer:
        def chunk(delta: dict, finish: str | None, **extra) -> str:
            data = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                    "system_fingerprint": "fp_emulator",
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}
            return "data: " + json.dumps(data) + "\n\n"

        pieces = re.findall(r"\S+\s*|\s+", reply) or [""]
        events = [chunk({"role": "assistant", "content": "", "refusal": None}, None)]
        events += [chunk({"content": piece}, None) for piece in pieces]
        events.append(chunk({}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append("data: " + json.dumps({"id": completion_id, "object": "chat.completion.chunk",
                                                 "created": created, "model": model, "choices": [],
                                                 "usage": usage}) + "\n\n")
        events.append("data: [DONE]\n\n")
        return Answer(200, "".join(events), {"Cache-Control": "no-cache"}, "text/event-stream; charset=utf-8")
