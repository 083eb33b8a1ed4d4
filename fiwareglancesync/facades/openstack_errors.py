"""Turn keystoneauth1 / glanceclient / requests exceptions into one-line operator messages.

:func:`facade_error` is the one place where such an exception becomes the
:class:`~fiwareglancesync.errors.FacadeError` a facade raises: its one line, and the
HTTP status the cloud answered as ``status``, so that nothing above has to dig the
library's exception out of ``__cause__``. :func:`cannot_tell` reads that status for
information a Glance may not offer. This module also decides which failures are worth retrying: only those a second attempt can cure
(a refused or dropped connection, a timeout, a 502/503/504), and only for calls that
are safe to repeat — the facade never retries a create or a transfer.
"""

from __future__ import annotations

import errno
import http.client
import re
import socket
import ssl
from collections.abc import Iterator

import requests
from glanceclient import exc as glance_exc
from keystoneauth1 import exceptions as ks_exc

from fiwareglancesync.credentials import PASSWORD_PLUGINS, Credential
from fiwareglancesync.errors import FacadeError

# HTTP statuses that say "try again later" rather than "you asked for something wrong".
TRANSIENT_STATUSES = frozenset({502, 503, 504})
# What a Glance answers when asked for information it does not offer: an older release
# (404) or a policy that keeps it from this user (403). Either way it cannot tell.
CANNOT_TELL_STATUSES = frozenset({403, 404})

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    ks_exc.ConnectFailure,
    ks_exc.ConnectTimeout,
    ks_exc.UnknownConnectionError,
    glance_exc.CommunicationError,
    glance_exc.InvalidEndpoint,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    ConnectionError,
    TimeoutError,
)

# Everything the OpenStack libraries raise for a failed call (as opposed to a bug).
CLIENT_ERRORS: tuple[type[BaseException], ...] = (
    *CONNECTION_ERRORS,
    ks_exc.ClientException,
    glance_exc.BaseException,
    glance_exc.ClientException,
    glance_exc.EndpointNotFound,
    requests.exceptions.RequestException,
    OSError,
)


def status_of(error: BaseException) -> int | None:
    """The HTTP status behind a client exception, if there is one."""
    for attribute in ("code", "http_status", "status_code"):
        value = getattr(error, attribute, None)
        if isinstance(value, int):
            return value
    return None


def is_transient(error: BaseException) -> bool:
    """Worth another attempt: the connection failed, or the server said 'later'."""
    if isinstance(error, CONNECTION_ERRORS):
        return True
    return status_of(error) in TRANSIENT_STATUSES


MAX_DETAIL = 160  # characters of a server's or library's own text kept in a message


def _first_line(text: str) -> str:
    text = re.sub(r"<[^>]+>", " ", text)  # HTML error pages
    lines = [" ".join(line.split()) for line in text.splitlines()]
    line = next((line for line in lines if line), "").strip()
    return line if len(line) <= MAX_DETAIL else line[: MAX_DETAIL - 3] + "..."


def _chain(error: BaseException, limit: int = 16) -> Iterator[BaseException]:
    """The error and what it wraps, the explicit wrappings first.

    requests and urllib3 keep the socket error in ``args`` or ``reason`` rather than in
    ``__cause__``; those links say what this error is. ``__context__`` only says what
    was being handled when it happened (an earlier attempt, say), so it comes last.
    """
    seen: set[int] = set()
    later: list[BaseException] = []
    stack = [error]
    while (stack or later) and len(seen) < limit:
        current = stack.pop() if stack else later.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        explicit = [current.__cause__, getattr(current, "reason", None)]
        explicit += [arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException)]
        stack.extend(reversed([item for item in explicit if isinstance(item, BaseException)]))
        if isinstance(current.__context__, BaseException):
            later.append(current.__context__)


_ERRNO_CAUSES = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "timed out",
}


def _cause_of(error: BaseException) -> str | None:
    if isinstance(error, ssl.SSLError | ks_exc.SSLError | glance_exc.SSLCertificateError):
        return "TLS verification failed"
    if isinstance(error, socket.gaierror):
        return "host name not found"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ConnectionResetError):
        return "connection reset"
    if isinstance(error, http.client.RemoteDisconnected):
        return "connection closed by the server"
    if isinstance(
        error,
        TimeoutError | socket.timeout | requests.exceptions.Timeout | ks_exc.ConnectTimeout,
    ):
        return "timed out"
    number = getattr(error, "errno", None)
    if isinstance(error, OSError) and number in _ERRNO_CAUSES:
        return _ERRNO_CAUSES[number]
    text = str(error)
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "host name not found"
    if "Connection refused" in text:
        return "connection refused"
    if "timed out" in text.lower():
        return "timed out"
    return None


def short_cause(error: BaseException) -> str:
    """A few words saying why a connection failed ("connection refused", "timed out")."""
    for link in _chain(error):
        cause = _cause_of(link)
        if cause:
            return cause
    return _details(error)


def _details(error: BaseException) -> str:
    details = getattr(error, "details", None)
    if isinstance(details, str) and details.strip():
        return _first_line(details)
    return _first_line(str(error)) or type(error).__name__


def describe(error: BaseException, what: str) -> str:
    """One line saying what failed (``what``) and why, with the HTTP status if any."""
    status = status_of(error)
    if isinstance(error, ks_exc.SSLError | glance_exc.SSLCertificateError):
        return f"{what}: TLS verification failed ({_details(error)}); check cacert/insecure"
    if isinstance(error, CONNECTION_ERRORS) and status is None:
        return f"{what}: cannot connect ({short_cause(error)})"
    if status == 401:
        return f"{what}: not authorised (HTTP 401): the token was refused"
    if status == 403:
        details = _details(error)
        if "publicize" in details.lower():
            return (
                f"{what}: forbidden (HTTP 403): this user may not make images public "
                "(policy publicize_image needs the admin role)"
            )
        return f"{what}: forbidden (HTTP 403): {details}"
    if status is not None:
        return f"{what}: HTTP {status}: {_details(error)}"
    return f"{what}: {_details(error)}"


def describe_auth(error: BaseException, credential: Credential) -> str:
    """One line for a failure to get a token from Keystone, naming whose credential."""
    auth_url = credential.auth_url
    status = status_of(error)
    if credential.is_application_credential and status in (401, 404):
        # Keystone 30 answers 404 once the credential is deleted, 401 once it has expired
        # or for a wrong secret: either way the credential no longer opens the door.
        why = (
            "it no longer exists (deleted or revoked)"
            if status == 404
            else "expired, revoked, or a wrong secret"
        )
        return f"Keystone {auth_url}: HTTP 401: {credential.describe()} refused: {why}"
    if isinstance(error, ks_exc.Unauthorized) or status == 401:
        if credential.auth_type in PASSWORD_PLUGINS:
            return (
                f"Keystone {auth_url} refused the credentials of {credential.describe()} "
                "(HTTP 401): wrong user name, password, project or domain"
            )
        return f"Keystone {auth_url} refused {credential.describe()} (HTTP 401): {_details(error)}"
    if isinstance(error, ks_exc.SSLError):
        return f"Keystone {auth_url}: TLS verification failed; check cacert/insecure"
    if isinstance(error, CONNECTION_ERRORS):
        return f"cannot reach Keystone at {auth_url} ({short_cause(error)})"
    return describe(error, f"Keystone {auth_url}")


def facade_error(
    error: BaseException,
    what: str,
    *,
    service: str | None = None,
    credential: Credential | None = None,
) -> FacadeError:
    """The FacadeError for a client library's ``error`` (raise it ``from error``).

    Its message is :func:`describe`'s line for ``what`` failing, or, when ``credential``
    is given (a request for a token), :func:`describe_auth`'s; ``status`` is the HTTP
    status behind ``error``; ``service`` names who failed when the caller knows better
    than the facade method's default.
    """
    message = describe_auth(error, credential) if credential else describe(error, what)
    failure = FacadeError(message, status=status_of(error))
    if service is not None:
        failure.service = service
    return failure


def cannot_tell(error: FacadeError) -> bool:
    """Did the cloud answer that it cannot (or will not) say, rather than fail?"""
    return error.status in CANNOT_TELL_STATUSES
