"""URLs the CLI is given (``--prometheus-url``, ``--grafana-url``, OTLP endpoints): checked before
use, shown with their credentials masked.

``http://user:secret@host`` is a common way to pass basic auth, so any URL may carry a password;
like Terraform and git, messages show it as ``http://user:***@host``. A bad URL (``http://[::1``,
a port that is not a number) is a one-line error naming the option, not a traceback.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from platform_obs._redaction import MASK as _SHARED_MASK
from platform_obs._redaction import mask_url_passwords

MASK = _SHARED_MASK


def mask(url: str) -> str:
    """``url`` with the password (or a user-only credential) of its authority replaced by ***.

    The SDK's rule, so both halves print URLs alike; works on text that is not a valid URL too,
    and on scheme-less ``user:pw@host:port`` endpoints.
    """
    return mask_url_passwords(url)


def credential(url: str) -> str | None:
    """The secret part of ``url``'s authority (the password, or a lone user part), if any."""
    masked = mask(url)
    if masked == url:
        return None
    authority = url.partition("://")[2] or url
    userinfo = authority.split("/", 1)[0].rpartition("@")[0]
    user, colon, password = userinfo.partition(":")
    return password if colon else user


def has_credentials(url: str) -> bool:
    return mask(url) != url


def problem(url: str, *, schemes: tuple[str, ...] = ("http", "https")) -> str | None:
    """Why ``url`` is not a usable base URL, or ``None``. Never includes the password."""
    try:
        parts = urlsplit(url)
        port = parts.port  # parsed lazily by urllib: raises here for "x" or 99999
    except ValueError as exc:
        return f"{mask(url)!r} is not a valid URL ({exc})"
    if parts.scheme not in schemes:
        wanted = " or ".join(f"{s}://" for s in schemes)
        return f"{mask(url)!r} must start with {wanted}"
    if not parts.hostname:
        return f"{mask(url)!r} has no host"
    if port == 0:
        return f"{mask(url)!r} has port 0"
    return None
