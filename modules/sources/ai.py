"""Album descriptions from any OpenAI-compatible chat endpoint (OpenAI, Infomaniak's EurIA, a local
server), through the openai library pointed at `AI_API_URL`. The library's retries are off: 429s
are waited out by the enrichment job from Retry-After, visibly."""
from __future__ import annotations

import openai

from .errors import Retryable, SourceError

PROMPT = ("Write a description of the album \"{title}\" by {artist}{year} for the page of this record in a "
          "music lover's collection: what it sounds like, when and how it was made, and why it matters. "
          "Three short paragraphs, about 150 words, plain text without headings or lists. Write it in {language}. "
          "If you do not know this album, say so briefly instead of inventing facts.")


class AISettingsError(SourceError):
    pass


def missing_settings(settings):
    return [n for n in ("AI_API_URL", "AI_API_KEY", "AI_MODEL") if not settings.get(n)]


def make_client(settings):
    return openai.OpenAI(base_url=settings["AI_API_URL"], api_key=settings["AI_API_KEY"], max_retries=0,
                         timeout=120)


def describe_album(client, model, artist, title, year, language):
    """The description text written by `model`."""
    prompt = PROMPT.format(title=title, artist=artist, year=f" ({year})" if year else "", language=language)
    try:
        reply = client.chat.completions.create(model=model, messages=[
            {"role": "system", "content": "You write accurate, warm and concise notes about music records."},
            {"role": "user", "content": prompt}])
    except openai.RateLimitError as exc:
        raise Retryable("rate limit", _retry_after(exc)) from None
    except openai.AuthenticationError:
        raise AISettingsError("The AI endpoint refused the key (401). Check AI_API_KEY.") from None
    except openai.NotFoundError as exc:
        raise AISettingsError(f"The AI endpoint does not know this model or path ({exc.message}). Check "
                              "AI_MODEL and AI_API_URL.") from None
    except openai.InternalServerError as exc:
        raise Retryable(f"HTTP {exc.status_code}", _retry_after(exc)) from None
    except (openai.APIConnectionError, openai.APITimeoutError):
        raise Retryable("could not reach the AI endpoint") from None
    except openai.APIStatusError as exc:
        raise SourceError(f"The AI endpoint answered HTTP {exc.status_code}: {exc.message}") from None
    text = (reply.choices[0].message.content or "").strip() if reply.choices else ""
    if not text:
        raise SourceError("The AI endpoint answered with an empty description")
    return text


def _retry_after(exc):
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    value = headers.get("retry-after")
    try:
        return float(value) if value else None
    except ValueError:
        return None
