"""Keeping passwords out of what the engine and its tools print, log or raise.

One masking function for everything that might hold a URL: a single broker or database URL, several
broker URLs joined by `;` (kombu's failover list), and free text such as an exception's message or a
pydantic error that quotes a setting. A password in `scheme://user:password@host` and a `password=`
parameter (a libpq connection string or a URL's query) become `***`; the user and host stay, because
they are what an operator needs to tell which connection failed.

`SecretUrl` is a `str` that repr()s masked: the settings hold their URLs as SecretUrl, so the rest of
the code uses them as the plain strings they are, while repr(settings), str(settings) and anything that
formats a setting with %r or in a container never shows the password.
"""
from __future__ import annotations

import re

MASK = "***"

# scheme://user:password@ — the password runs to the LAST '@' before the next separator, so a password
# holding a raw '@' or '/' (not percent-encoded, as people do write them) is masked whole rather than
# leaving its tail behind. Separators: whitespace, ';' (failover lists), quotes, brackets and ','.
_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@;,'\"<>()\[\]]*:)"
                       r"(?P<password>[^\s;,'\"<>()\[\]]*)@")
_PASSWORD_PARAM = re.compile(r"(?P<head>\b(?:password|passwd|pwd)\s*=\s*)(?P<password>'[^']*'|\"[^\"]*\"|[^\s&;,'\"]+)",
                             re.IGNORECASE)


def mask_secrets(text) -> str:
    """`text` with every password in every URL (and every `password=` value) replaced by ***.

    Safe on anything: a URL, several joined by ';', an error message, None (gives '')."""
    if text is None:
        return ""
    text = str(text)
    if "@" in text:
        text = _USERINFO.sub(lambda m: m["head"] + MASK + "@", text)
    if "=" in text:
        text = _PASSWORD_PARAM.sub(lambda m: m["head"] + MASK, text)
    return text


class SecretUrl(str):
    """A URL that is an ordinary str to the code that connects with it, and masked in repr().

    str() must stay the real URL (kombu, pika and SQLAlchemy are handed it); repr() is what settings,
    tracebacks' locals, pydantic's own repr and f'{x!r}' use, and that is masked."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(mask_secrets(str.__str__(self)))

    @property
    def masked(self) -> str:
        return mask_secrets(str.__str__(self))
