"""Secrets a run must never print or report: the Redis URL, its password, the GitHub token."""

from __future__ import annotations

import os
from collections.abc import Iterable, MutableMapping
from urllib.parse import unquote, urlsplit

#: Variables that carry secrets; a worker takes them out of its environment before any test
#: runs, so a test (or pytest's assertion introspection of os.environ) cannot show them.
SECRET_VARIABLES = ("CIQUEUE_REDIS_URL", "CIQUEUE_GITHUB_TOKEN", "GITHUB_TOKEN")

MASK = "***"


def url_secrets(url: str) -> list[str]:
    """The URL itself and its password, as written and decoded."""
    if not url:
        return []
    found = [url]
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        found += [password, unquote(password)]
    return found


class Scrubber:
    """Replaces every known secret in a text by ``***``, longest first."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Very short values would mask ordinary words; a real password is longer.
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text


def take_secrets(environ: MutableMapping[str, str] = os.environ) -> list[str]:
    """Remove the secret variables from `environ`; returns the secret values they held."""
    found: list[str] = []
    for name in SECRET_VARIABLES:
        value = environ.pop(name, "")
        found += url_secrets(value) if name.endswith("REDIS_URL") else ([value] if value else [])
    return found
