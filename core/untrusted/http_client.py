"""HTTP requests to servers a user named: redirects refused, replies never echoed.

A user-named server (a model, judge or tracking server from the allow-list) is trusted only as
far as the allow-list goes. urllib's default opener follows a redirect to any host and sends the
request's headers along, the Authorization key included, so one redirecting server escapes the
allow-list and leaks the key. And an error that quotes the reply turns the app into a reader of
whatever local service the URL reaches. So here a redirect is an error naming its target, and
an error says the status code and its reason, never the body. A reply is read up to
MAX_REPLY_BYTES: a server (or what sits at its address) cannot fill the app's memory.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from http import HTTPStatus
from typing import Any


class RedirectRefused(urllib.error.URLError):
    """A server answered with a redirect; the request was not sent on. Names the target."""

    def __init__(self, url: str, code: int, target: str):
        self.url, self.code, self.target = url, code, target
        super().__init__(
            f"{url} redirects (HTTP {code}) to {target[:200]}; redirects are not followed: "
            "name the final URL"
        )

    def __str__(self) -> str:
        return str(self.reason)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuses every redirect instead of following it (with the request's headers)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 (urllib's)
        fp.close()
        raise RedirectRefused(req.full_url, code, newurl)


_OPENER = urllib.request.build_opener(_NoRedirect)
# A chat completion of thousands of tokens is tens of KB; a model list a few hundred.
MAX_REPLY_BYTES = 16 * 2**20


class ReplyTooLarge(ValueError):
    """A reply longer than the cap; nothing of it is kept."""


def read_capped(response: Any, limit: int = MAX_REPLY_BYTES) -> bytes:
    """The body of `response`, refused (ReplyTooLarge) past `limit` bytes: read at most one
    byte more than the cap, whatever Content-Length claims."""
    data = response.read(limit + 1)
    if len(data) > limit:
        raise ReplyTooLarge(f"the reply is longer than {limit // 2**20} MB; it was not read")
    return data


def open_url(request: urllib.request.Request | str, timeout: float) -> Any:
    """urlopen without following redirects: raises RedirectRefused (a URLError) for a 3xx,
    urllib.error.HTTPError for other error codes, URLError when the server cannot be reached."""
    return _OPENER.open(request, timeout=timeout)


def status_text(e: urllib.error.HTTPError) -> str:
    """The standard reason phrase of an error reply's code ('Not Found' for 404): nothing the
    server wrote in the body, nor its own reason phrase, which it chooses too."""
    try:
        return HTTPStatus(e.code).phrase
    except ValueError:
        return "unknown status"
