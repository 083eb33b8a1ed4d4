"""The facade for real clouds: Keystone v3 (keystoneauth1) and Glance Images API v2.

One :class:`GlanceFacade` serves one target: one Keystone credential, one project-scoped
token, the image endpoints of that Keystone's catalog. Image data is streamed: from a
file in images_dir or straight from the master Glance into the upload request, never
through a temporary file and never whole in memory.

Safety rules the code below keeps:

* every HTTP call has a timeout, and listing a region is bounded as a whole by the
  target's ``list_images_timeout``;
* only calls that are safe to repeat (listing, reading, metadata updates, deletes) are
  retried, with backoff; creating an image and sending its data are not;
* an upload that fails or is interrupted, for whatever reason, deletes the image it
  created, so nothing stays ``queued``; leftovers of an earlier run that could not do
  so (a killed Glance, a killed GlanceSync) are removed before the image is uploaded
  again.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import tenacity
from glanceclient import exc as glance_exc
from glanceclient.v2 import client as glance_client
from glanceclient.v2 import schemas as glance_schemas
from keystoneauth1 import adapter as ks_adapter
from keystoneauth1 import session as ks_session
from keystoneclient.v3 import client as keystone_client

from fiwareglancesync.config import TargetConfig
from fiwareglancesync.credentials import auth_plugin
from fiwareglancesync.errors import FacadeError
from fiwareglancesync.facades.base import (
    CHUNK_SIZE,
    UNFINISHED_STATUSES,
    ChecksumMismatch,
    Facade,
    ImageData,
    ImportSource,
    tagged,
)
from fiwareglancesync.facades.glance_import import (
    ImportFailed,
    import_failure,
    import_progress,
    import_request,
    offered_import_methods,
)
from fiwareglancesync.facades.glance_model import (
    JSON_PATCH,
    accepted_members,
    create_request,
    expected_hash,
    image_from_record,
    metadata_patch,
    protect_patch,
    tag_changes,
    verification_problems,
)
from fiwareglancesync.facades.openstack_errors import (
    CLIENT_ERRORS,
    cannot_tell,
    describe,
    facade_error,
    is_transient,
)
from fiwareglancesync.facades.streams import (
    ChunkReader,
    GlanceStream,
    ResumeImpossible,
    SourceError,
    closing_chunks,
    guarded_source,
    range_start,
    resumable_chunks,
    size_checked_chunks,
    verified_chunks_pipelined,
    with_progress,
)
from fiwareglancesync.image import Image, same_owner
from fiwareglancesync.preflight import AcceptedFormats, formats_from_schema
from fiwareglancesync.region import RegionRef

logger = logging.getLogger(__name__)

T = TypeVar("T")

CONNECT_TIMEOUT = 10.0  # seconds to open a connection: a live server answers at once
HTTP_TIMEOUT = 120.0  # seconds of silence on an open connection before giving up
RETRY_ATTEMPTS = 3
PAGE_SIZE = 500
DISCARD_SECONDS = 30.0  # how long to keep trying to delete a half-made image
# An import is polled after IMPORT_POLL_FIRST seconds, then half as long again each
# time, at most every IMPORT_POLL_MAX seconds: the end of an import is seen within a few
# tenths of a second for small images and within a second for big ones, at the cost of
# one GET (about 10 ms of a Glance's CPU) a second.
IMPORT_POLL_FIRST = 0.2
IMPORT_POLL_GROWTH = 1.5
IMPORT_POLL_MAX = 1.0
ACCESS_RULES_HINT = " (or outside the access rules of the application credential)"
# Requests of one listing sent together (the members of its shared images): a few, so
# that a region's Glance is not flooded by one sync.
LISTING_THREADS = 4


class _TimedSession(ks_session.Session):
    """A keystoneauth session that puts a (connect, read) timeout on every request."""

    def __init__(self, timeouts: tuple[float, float], **kwargs: Any):
        super().__init__(**kwargs)
        self._timeouts = timeouts

    def request(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self._timeouts)
        return super().request(*args, **kwargs)


def _log_retry(state: tenacity.RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    logger.debug("retrying after %s (attempt %d)", error, state.attempt_number)


def _retrying() -> tenacity.Retrying:
    """Backoff for idempotent calls: a refused connection, a timeout, a 502/503/504."""
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_transient),
        stop=tenacity.stop_after_attempt(RETRY_ATTEMPTS),
        wait=tenacity.wait_exponential(multiplier=0.5, max=4),
        before_sleep=_log_retry,
        reraise=True,
    )


def _call_with_deadline(function: Callable[[], T], seconds: float, what: str) -> T:
    """Run ``function`` in a helper thread and give up after ``seconds``.

    Per-request timeouts alone do not bound a listing: a server can answer each page
    just in time, or retries can add up. The abandoned thread ends at its own socket
    timeout, which is set to the same number of seconds.
    """
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = function()
        except BaseException as error:  # noqa: BLE001 - handed to the caller
            outcome["error"] = error

    thread = threading.Thread(target=work, name=f"glancesync {what}", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise FacadeError(f"{what} took longer than list_images_timeout ({seconds:g} s)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


class _SharedSchemas(glance_schemas.Controller):
    """glanceclient's schema controller, reading each schema once per Glance endpoint.

    glanceclient asks for ``/v2/schemas/image`` once per controller and client (to
    build its models), and the pre-flight asks for it too: three or four requests per
    region and run for an answer that only a reconfigured Glance changes. Every client
    of one endpoint (the listing one and the other) and the pre-flight share one
    ``cache`` of the bodies Glance answered, by schema name; only answers are kept, so
    a failure is asked again.
    """

    def __init__(self, http_client: Any, cache: dict[str, Any]):
        super().__init__(http_client)
        self._cache = cache

    def get(self, schema_name: str) -> Any:
        body = self._cache.get(schema_name)
        if body is None:
            _, body = self.http_client.get(f"/v2/schemas/{schema_name}")
            self._cache[schema_name] = body
        return glance_schemas.Schema(body)


def _share_schemas(client: glance_client.Client, cache: dict[str, Any]) -> None:
    """Make every controller of ``client`` read its schemas through ``cache``."""
    shared = _SharedSchemas(client.http_client, cache)
    client.schemas = shared
    for controller in vars(client).values():
        if hasattr(controller, "schema_client"):
            controller.schema_client = shared


def _together(function: Callable[[Any], T], items: Iterable[Any]) -> list[T]:
    """``[function(item) for item in items]``, the calls sent together on a few threads.

    The results keep the order of ``items``; when calls fail, the first one's error in
    that order is raised (as the loop would have), once every call has ended. Daemon
    threads, as for :func:`_call_with_deadline`: a Ctrl-C abandons them rather than
    waiting for their requests to time out.
    """
    items = list(items)
    if len(items) < 2:
        return [function(item) for item in items]
    results: list[Any] = [None] * len(items)
    errors: list[BaseException | None] = [None] * len(items)
    indexes = iter(range(len(items)))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                index = next(indexes, None)
            if index is None:
                return
            try:
                results[index] = function(items[index])
            except BaseException as error:  # noqa: BLE001 - raised by the caller
                errors[index] = error

    threads = [
        threading.Thread(target=work, name="glancesync listing", daemon=True)
        for _ in range(min(LISTING_THREADS, len(items)))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for error in errors:
        if error is not None:
            raise error
    return results


def _ranged_download(
    client: glance_client.Client, image_id: str, byte_range: str, raise_exc: bool = True
) -> Any:
    """``GET /v2/images/{id}/file`` with a ``Range`` header, as a streamed response.

    Through keystoneauth's own request: glanceclient %-encodes header values, and Glance
    reads ``bytes%3D10-`` as no range at all (HTTP 416).
    """
    return ks_adapter.Adapter.request(
        client.http_client,
        f"/v2/images/{image_id}/file",
        "GET",
        headers={"Range": byte_range},
        stream=True,
        raise_exc=raise_exc,
    )


def _keeps_the_promise(method: Callable[..., T]) -> Callable[..., T]:
    """Only FacadeError leaves a facade: a client library's own exception that no call
    inside the method translated is turned into one here (bugs stay what they are), and
    every FacadeError says which service and region failed."""

    @functools.wraps(method)
    def wrapper(self: GlanceFacade, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except FacadeError as error:
            raise tagged(self._hinted(error), "Glance", args) from error.__cause__
        except CLIENT_ERRORS as error:
            failure = facade_error(error, method.__name__.replace("_", " "))
            raise tagged(self._hinted(failure), "Glance", args) from error

    return wrapper


class GlanceFacade(Facade):
    """The regions of one target, reached through its Keystone v3 catalog."""

    # By region, our unfinished records by name as the last listing found them: the
    # leftovers an upload removes (see _remove_unfinished). A sync lists a region under
    # its lock before it uploads there, so that listing is the one to trust.
    _listed_unfinished: dict[str, dict[str, list[dict[str, Any]]]] | None = None

    def __init__(self, target: TargetConfig):
        self.target = target
        credential = target.credential
        # Any keystoneauth plugin: a password, an application credential, a token, OIDC.
        self._auth = auth_plugin(credential)
        tls = {"verify": credential.verify, "cert": credential.client_cert}
        self._session = _TimedSession((CONNECT_TIMEOUT, HTTP_TIMEOUT), auth=self._auth, **tls)
        listing = float(target.list_images_timeout)
        self._listing_session = _TimedSession(
            (min(CONNECT_TIMEOUT, listing), listing), auth=self._auth, **tls
        )
        self._clients: dict[tuple[str, bool], glance_client.Client] = {}
        self._endpoints: dict[str, str] | None = None
        self._project_id: str | None = None
        # By image endpoint (regions served by one Glance share them): what only a
        # reconfigured Glance changes. The schemas live as long as the clients.
        self._import_methods: dict[str, frozenset[str]] = {}
        self._schemas: dict[str, dict[str, Any]] = {}

    def _hinted(self, error: FacadeError) -> FacadeError:
        """A Glance 401 to a token that Keystone just gave: with an application
        credential, its access rules are the likely reason, and the message says so."""
        if (
            self.target.credential.is_application_credential
            and error.status == 401
            and error.service != "Keystone"
            and ACCESS_RULES_HINT not in str(error)
        ):
            error.args = (f"{error}{ACCESS_RULES_HINT}",)
        return error

    # ------------------------------------------------------------------- Keystone

    def _access(self) -> Any:
        """The token and catalog (fetched once, renewed by keystoneauth when it expires)."""
        credential = self.target.credential
        try:
            # Asking for a token twice is harmless, so a refused connection is retried.
            return _retrying()(self._auth.get_access, self._session)
        except CLIENT_ERRORS as error:
            what = f"Keystone {credential.auth_url}"
            raise facade_error(error, what, service="Keystone", credential=credential) from error

    def _image_endpoints(self) -> dict[str, str]:
        if self._endpoints is None:
            catalog = self._access().service_catalog
            found = catalog.get_endpoints_data(
                service_type="image", interface=self.target.credential.interface
            )
            self._endpoints = {
                endpoint.region_name: endpoint.url
                for endpoints in found.values()
                for endpoint in endpoints
                if endpoint.region_name
            }
        return self._endpoints

    @_keeps_the_promise
    def regions(self) -> list[str]:
        return sorted(self._image_endpoints())

    def lock_key(self, region: RegionRef) -> str | None:
        # The same Glance whatever the user: one Keystone URL and region name.
        return f"glance {self.target.credential.auth_url.rstrip('/')} {region.name}"

    @_keeps_the_promise
    def project_id(self) -> str:
        if self._project_id is None:
            project_id = self._access().project_id
            if not project_id:
                raise FacadeError(
                    f"Keystone {self.target.credential.auth_url} gave a token that is not "
                    "scoped to a project; Glance needs a project-scoped token",
                    service="Keystone",
                )
            configured = self.target.tenant_id
            if configured and not same_owner(configured, project_id):
                logger.warning(
                    "target %s: tenant_id %s differs from the project id %s Keystone "
                    "gives; using Keystone's",
                    self.target.name,
                    configured,
                    project_id,
                )
            self._project_id = project_id
        return self._project_id

    def _keystone(self) -> keystone_client.Client:
        # The catalog's identity endpoint, through the session that holds the token.
        return keystone_client.Client(
            session=self._session, interface=self.target.credential.interface
        )

    def _projects(self) -> list[Any]:
        """Every project the token may see (listing them takes an admin, or a reader of
        the domain, in Keystone's default policy)."""
        try:
            return _retrying()(lambda: list(self._keystone().projects.list()))
        except CLIENT_ERRORS as error:
            raise facade_error(error, "listing the projects", service="Keystone") from error

    @_keeps_the_promise
    def project_names(self, project_ids: Iterable[str]) -> dict[str, str]:
        wanted = set(project_ids)
        if not wanted:
            return {}
        projects = self._projects()
        return {project.id: project.name for project in projects if project.id in wanted}

    @_keeps_the_promise
    def project_ids_by_name(self, names: Iterable[str]) -> dict[str, str]:
        wanted = set(names)
        if not wanted:
            return {}
        own_domain = self._access().project_domain_id
        projects = self._projects()
        found: dict[str, str] = {}
        for project in sorted(projects, key=lambda p: p.domain_id != own_domain):
            if project.name in wanted:
                found.setdefault(project.name, project.id)  # own domain first
        return found

    def _client(self, region: str, listing: bool = False) -> glance_client.Client:
        key = (region, listing)
        if key not in self._clients:
            endpoints = self._image_endpoints()
            if region not in endpoints:
                known = ", ".join(sorted(endpoints)) or "none"
                raise FacadeError(
                    f"unknown region {region}: Keystone {self.target.credential.auth_url} "
                    f"has no {self.target.credential.interface} image endpoint there "
                    f"(regions with one: {known})"
                )
            client = glance_client.Client(
                session=self._listing_session if listing else self._session,
                endpoint_override=endpoints[region],
                region_name=region,
                interface=self.target.credential.interface,
                service_type="image",
            )
            _share_schemas(client, self._schemas.setdefault(endpoints[region], {}))
            self._clients[key] = client
        return self._clients[key]

    def _call(self, what: str, function: Callable[..., T], *args: Any, retry: bool = True) -> T:
        """Call the client; retry if it is safe, and turn failures into one line."""
        try:
            if retry:
                return _retrying()(function, *args)
            return function(*args)
        except CLIENT_ERRORS as error:
            raise facade_error(error, what) from error

    # ------------------------------------------------------------------- listing

    @staticmethod
    def _records(client: glance_client.Client, **filters: str) -> list[dict[str, Any]]:
        """Every image record, all pages, hidden ones too (Glance hides them by default)."""
        # One half after the other: the first request to a Glance with a new token is
        # the one its keystonemiddleware validates, and two at once validate it twice.
        records: dict[str, dict[str, Any]] = {}
        for hidden in ("false", "true"):
            query = dict(filters, os_hidden=hidden)
            for record in client.images.list(filters=query, page_size=PAGE_SIZE):
                records.setdefault(record["id"], dict(record))
        return list(records.values())

    @classmethod
    def _records_with_members(
        cls, client: glance_client.Client
    ) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
        """The records, and the projects that accepted each shared image, by image id.

        One more call per shared image, a few at once; images of the other visibilities
        have no members.
        """
        records = cls._records(client)
        shared = [record["id"] for record in records if record.get("visibility") == "shared"]

        def accepted(image_id: str) -> list[str]:
            return accepted_members(client.image_members.list(image_id))

        return records, dict(zip(shared, _together(accepted, shared), strict=True))

    @_keeps_the_promise
    def list_images(self, where: RegionRef) -> list[Image]:
        """Every image the token may list: with an admin token, other projects' private
        ones too. The planner's owner rules decide what counts, and a backup keeps them."""
        self.project_id()  # a token (and its catalog) first: its failure names Keystone
        region = where.name
        client = self._client(region, listing=True)
        what = "listing the images"
        records, members = _call_with_deadline(
            lambda: self._call(what, self._records_with_members, client),
            float(self.target.list_images_timeout),
            what,
        )
        images = [
            image_from_record(record, where.fullname, members.get(record["id"], ()))
            for record in records
        ]
        logger.debug("%s: %d images listed", region, len(images))
        self._remember_unfinished(region, records)
        return images

    def _remember_unfinished(self, region: str, records: list[dict[str, Any]]) -> None:
        unfinished: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            if self._is_our_leftover(record):
                unfinished.setdefault(record.get("name") or "", []).append(record)
        if self._listed_unfinished is None:
            self._listed_unfinished = {}
        self._listed_unfinished[region] = unfinished

    def _is_our_leftover(self, record: dict[str, Any]) -> bool:
        return record.get("status") in UNFINISHED_STATUSES and same_owner(
            record.get("owner"), self.project_id()
        )

    # ------------------------------------------------------------------- changes

    def _get(self, client: glance_client.Client, image_id: str) -> dict[str, Any]:
        return dict(client.images.get(image_id))

    @_keeps_the_promise
    def update(self, where: RegionRef, image: Image) -> None:
        client = self._client(where.name)

        # Built from a fresh read on every attempt, so a retry never replays a "remove"
        # that already happened.
        self._call(
            f"updating the metadata of image {image.name}",
            self._apply_metadata,
            client,
            image.id,
            image,
        )

    def _apply_metadata(
        self,
        client: glance_client.Client,
        image_id: str,
        image: Image,
        known: list[dict[str, Any]] | None = None,
    ) -> bool:
        """Give record ``image_id`` the metadata of ``image``: tags, the JSON patch, the
        members (once it is shared), and protection last (never removed). True when
        something was changed.

        ``known``: a record just read, used once (taken out of the list), so a retry
        reads the record afresh.
        """
        current = known.pop() if known else self._get(client, image_id)
        add, remove = tag_changes(current, image)
        for tag in add:
            client.image_tags.update(image_id, tag)
        for tag in remove:
            client.image_tags.delete(image_id, tag)
        changed = bool(add or remove)
        changed |= self._patch(client, image_id, metadata_patch(current, image))
        changed |= self._add_members(client, image_id, image)
        changed |= self._patch(client, image_id, protect_patch(current, image))
        return changed

    @staticmethod
    def _patch(client: glance_client.Client, image_id: str, patch: list[dict[str, Any]]) -> bool:
        if patch:
            client.http_client.patch(
                f"/v2/images/{image_id}",
                headers={"Content-Type": JSON_PATCH},
                data=json.dumps(patch),
            )
        return bool(patch)

    @staticmethod
    def _add_members(client: glance_client.Client, image_id: str, image: Image) -> bool:
        """Share the image with ``image.members`` and accept it for them (the admin role
        may); members added by others are left alone."""
        if not image.members or image.visibility != "shared":
            return False
        existing = {m["member_id"]: m["status"] for m in client.image_members.list(image_id)}
        for member in image.members:
            if member not in existing:
                client.image_members.create(image_id, member)
            if existing.get(member) != "accepted":
                client.image_members.update(image_id, member, "accepted")
        return True

    @_keeps_the_promise
    def delete(self, where: RegionRef, image_id: str) -> bool:
        client = self._client(where.name)
        try:
            self._call(f"deleting image {image_id}", client.images.delete, image_id)
        except FacadeError as error:
            if error.status == 404:
                return False
            raise
        return True

    # ------------------------------------------------------------------- transfers

    @_keeps_the_promise
    def download(self, where: RegionRef, image: Image) -> ImageData:
        """Stream the master image's data: the GET starts now, the bytes flow later."""
        region = where.name
        client = self._client(region)
        source = f"image {image.id} of {region}"
        response, _ = self._call(
            f"downloading image {image.name}",
            client.http_client.get,
            f"/v2/images/{image.id}/file",
        )
        if response.status_code == 204:
            response.close()
            raise FacadeError(f"image {image.name} has no data in {region}")
        current = [response]

        def reopen(offset: int) -> Any:
            current[0] = self._download_from(client, image, offset)
            return current[0]

        body = resumable_chunks(response, reopen, image.size, source, CLIENT_ERRORS)
        chunks = guarded_source(body, source)
        stream = GlanceStream.from_stream(
            closing_chunks(chunks, lambda: current[0].close()), image, source
        )
        stream.on_close = lambda: current[0].close()  # also when no upload read it
        return stream

    @staticmethod
    def _download_from(client: glance_client.Client, image: Image, offset: int) -> Any:
        """The rest of the image's data from byte ``offset`` (a Range request).

        A response that is not the asked-for range cannot continue the upload: it is
        refused rather than skipped through, which would move the bytes twice.
        """
        response = _ranged_download(client, image.id, f"bytes={offset}-", raise_exc=False)
        start = range_start(response.headers.get("Content-Range"))
        if response.status_code != 206 or start != offset:
            response.close()
            raise ResumeImpossible(
                f"asked for the data of image {image.name} from byte {offset}, the "
                f"master Glance answered HTTP {response.status_code} "
                f"(Content-Range {response.headers.get('Content-Range')})"
            )
        return response

    @_keeps_the_promise
    def upload(self, where: RegionRef, image: Image, data: ImageData | None) -> Image:
        if data is None:
            raise FacadeError(f"no data to upload for image {image.name}")
        client = self._client(where.name)
        self._remove_unfinished(client, where, image.name)
        return self._fill(client, where, self._create(client, image), image, data)

    def _create(self, client: glance_client.Client, image: Image) -> str:
        """Create the record of ``image`` with every field a copy has; return its id."""
        what = f"creating image {image.name}"
        try:
            created = self._call(
                what, lambda: client.images.create(**create_request(image)), retry=False
            )
        except TypeError as error:  # the schema refused a value
            raise FacadeError(f"{what}: {error}") from error
        return str(created["id"])

    def _fill(
        self,
        client: glance_client.Client,
        where: RegionRef,
        image_id: str,
        image: Image,
        data: ImageData,
    ) -> Image:
        """Send the data into the record ``image_id`` and verify it; discard it on failure."""
        try:
            self._send(client, where.name, image_id, image, data)
            verified = self._get_verified(client, image_id, image, data)
            record = self._finish_copy(client, image_id, image, verified)
        except BaseException as error:
            # Whatever happened (Ctrl-C included), no half-made image may stay behind.
            self._discard(client, where.name, image_id, image.name)
            translated = self._transfer_error(error, image)
            if translated is error:
                raise
            raise translated from error
        return image_from_record(record, where.fullname)

    # ------------------------------------------------------------------- pre-flight

    def _optional_get(self, client: glance_client.Client, what: str, path: str) -> Any | None:
        """``GET path`` for information a Glance may not offer: None when it cannot tell
        (403 or 404), a FacadeError when it fails."""
        try:
            _, body = self._call(what, client.http_client.get, path)
        except FacadeError as error:
            if cannot_tell(error):
                return None
            raise
        return body

    @_keeps_the_promise
    def image_limits(self, where: RegionRef) -> dict[str, Any] | None:
        """``GET /v2/info/usage`` (Glance 2023.1 and later): empty without unified limits."""
        client = self._client(where.name)
        body = self._optional_get(client, "reading the image quota", "/v2/info/usage")
        usage = body.get("usage") if isinstance(body, dict) else None
        return usage if isinstance(usage, dict) else None

    @_keeps_the_promise
    def accepted_formats(self, where: RegionRef) -> AcceptedFormats | None:
        """The enums of ``GET /v2/schemas/image``: Glance's disk_formats and
        container_formats options."""
        client = self._client(where.name)
        # The schema glanceclient reads for its models too: asked once per endpoint.
        schemas = self._schemas[self._image_endpoints()[where.name]]
        if "image" not in schemas:
            body = self._optional_get(client, "reading the image schema", "/v2/schemas/image")
            if body is None:
                return None
            schemas["image"] = body
        return formats_from_schema(schemas["image"])

    @_keeps_the_promise
    def read_head(self, where: RegionRef, image: Image, size: int) -> bytes | None:
        """One ``Range: bytes=0-(size-1)`` request; a Glance that ignores the range and
        sends everything is read no further than ``size`` bytes."""
        client = self._client(where.name)

        def read() -> bytes:
            response = _ranged_download(client, image.id, f"bytes=0-{size - 1}")
            head = bytearray()
            try:
                for block in response.iter_content(CHUNK_SIZE):
                    head += block
                    if len(head) >= size:
                        break
            finally:
                response.close()
            return bytes(head[:size])

        try:
            return self._call(f"reading the first bytes of image {image.name}", read)
        except FacadeError as error:
            if error.status == 416:  # an image without data
                return b""
            raise

    # ------------------------------------------------------------------- imports

    @_keeps_the_promise
    def import_methods(self, where: RegionRef) -> frozenset[str]:
        """What ``GET /v2/info/import`` lists; none when the Glance predates imports."""
        client = self._client(where.name)
        endpoint = self._image_endpoints()[where.name]
        if endpoint not in self._import_methods:
            info = self._optional_get(client, "reading the import methods", "/v2/info/import")
            self._import_methods[endpoint] = offered_import_methods(info)
        return self._import_methods[endpoint]

    @_keeps_the_promise
    def import_image(
        self,
        where: RegionRef,
        image: Image,
        source: ImportSource,
        fallback: Callable[[], ImageData],
    ) -> Image:
        """glance-download ``image`` from ``source``; stream ``fallback()`` if that fails."""
        region = where.name
        client = self._client(region)
        self._remove_unfinished(client, where, image.name)
        image_id = self._create(client, image)
        began = time.monotonic()
        try:
            record = self._imported(client, image_id, image, source)
        except ImportFailed as failure:
            reuse = failure.reusable
            logger.warning(
                "%s: the %s of %s failed (%s); streaming it through this host instead, %s",
                region,
                source.method,
                image.name,
                failure.reason,
                "into the same record" if reuse else "into a new record",
            )
        except BaseException as error:
            self._discard(client, region, image_id, image.name)
            translated = self._transfer_error(error, image)
            if translated is error:
                raise
            raise translated from error
        else:
            logger.info(
                "%s: %s imported by %s from %s in %.1f s",
                region,
                image.name,
                source.method,
                source.region.name,
                time.monotonic() - began,
            )
            return image_from_record(record, where.fullname)
        if not reuse:
            self._discard(client, region, image_id, image.name)
        try:
            # Opening the data may refuse it (the pre-flight data check a glance-download
            # skipped) or fail: then no record of ours may stay behind.
            data = fallback()
        except BaseException:
            if reuse:
                self._discard(client, region, image_id, image.name)
            raise
        if not reuse:
            image_id = self._create(client, image)
        return self._fill(client, where, image_id, image, data)

    def _imported(
        self, client: glance_client.Client, image_id: str, image: Image, source: ImportSource
    ) -> dict[str, Any]:
        """Start the import, wait for it, verify it, and give the copy exactly our metadata.

        Raises :class:`ImportFailed` when the copy cannot be had this way.
        """
        self._start_import(client, image_id, image, source)
        record = self._await_import(client, image_id, image, source)
        problems = verification_problems(
            record, source.image.size, source.image.checksum, expected_hash(source.image)
        )
        if problems:
            raise ImportFailed(f"the copy failed verification: {'; '.join(problems)}", False)
        # The import sets some properties of the source image itself (hw_*, os_distro...):
        # _finish_copy puts back exactly the ones this copy must have.
        return self._finish_copy(client, image_id, image)

    def _finish_copy(
        self,
        client: glance_client.Client,
        image_id: str,
        image: Image,
        verified: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Once a copy is verified: the metadata that could not be set at its creation
        (members, protection, and whatever an import changed); return its record.

        ``verified``: the record the verification just read, after an upload (nothing
        else writes to it then): the metadata is compared with it, and it is the answer
        when nothing had to change. Two requests fewer per upload.
        """
        known = [verified] if verified is not None else None
        changed = self._call(
            f"updating the metadata of image {image.name}",
            self._apply_metadata,
            client,
            image_id,
            image,
            known,
        )
        if verified is not None and not changed:
            return verified
        return self._call(f"reading back image {image.name}", self._get, client, image_id)

    def _start_import(
        self, client: glance_client.Client, image_id: str, image: Image, source: ImportSource
    ) -> None:
        try:
            client.http_client.post(f"/v2/images/{image_id}/import", data=import_request(source))
        except CLIENT_ERRORS as error:
            # Refused (an HTTP error): nothing started, the record can take the data.
            # Otherwise it is unknown whether Glance started it: use a new record.
            failure = facade_error(error, "starting the import")
            raise ImportFailed(str(failure), failure.status is not None) from error

    def _await_import(
        self, client: glance_client.Client, image_id: str, image: Image, source: ImportSource
    ) -> dict[str, Any]:
        """Poll until the image is active; raise ImportFailed when it fails or times out."""
        deadline = time.monotonic() + source.timeout
        delay = IMPORT_POLL_FIRST
        while True:
            record = self._call(f"reading image {image.name}", self._get, client, image_id)
            status = record.get("status")
            # Active is not yet done: the import's last steps may still save the record
            # (with the properties Glance copied), which would undo the metadata put back
            # after. Done is when no task of the image is still running.
            if status == "active" and (
                time.monotonic() >= deadline or not self._running_tasks(client, image_id)
            ):
                return record
            # While it is importing, the image says all; its tasks matter once it is not.
            tasks = [] if status == "importing" else self._import_tasks(client, image_id)
            failure = import_failure(record, tasks)
            if failure is not None:
                raise ImportFailed(*failure)
            left = deadline - time.monotonic()
            if left <= 0:
                raise ImportFailed(
                    f"not finished after import_timeout ({source.timeout:g} s), "
                    f"{import_progress(record, tasks or self._import_tasks(client, image_id))}",
                    False,
                )
            time.sleep(min(delay, left))
            delay = min(delay * IMPORT_POLL_GROWTH, IMPORT_POLL_MAX)

    def _running_tasks(self, client: glance_client.Client, image_id: str) -> bool:
        tasks = self._import_tasks(client, image_id)
        return any(task.get("status") in ("pending", "processing") for task in tasks)

    def _import_tasks(self, client: glance_client.Client, image_id: str) -> list[dict[str, Any]]:
        """The image's import tasks (Images API 2.12); none where Glance does not say."""
        path = f"/v2/images/{image_id}/tasks"
        body = self._optional_get(client, "reading the import tasks", path)
        tasks = body.get("tasks") if isinstance(body, dict) else None
        return [task for task in tasks or [] if isinstance(task, dict)]

    def _send(
        self,
        client: glance_client.Client,
        region: str,
        image_id: str,
        image: Image,
        data: ImageData,
    ) -> None:
        # A file is checked against the master's MD5 while it is sent; a stream from the
        # master Glance only for its length (its content is checked by _get_verified).
        check = size_checked_chunks if isinstance(data, GlanceStream) else verified_chunks_pipelined
        chunks: Iterator[bytes] = guarded_source(
            check(data), data.source, passthrough=(ChecksumMismatch,)
        )
        chunks = with_progress(chunks, data.size, f"{region}: {image.name}")
        size = data.size if data.size > 0 else None
        logger.debug(
            "%s: sending %s (%d bytes) from %s", region, image.name, data.size, data.source
        )
        # Not retried: the stream cannot be rewound, and Glance accepts data only once.
        client.images.upload(image_id, ChunkReader(chunks), image_size=size)

    def _get_verified(
        self, client: glance_client.Client, image_id: str, image: Image, data: ImageData
    ) -> dict[str, Any]:
        record = self._call(f"reading back image {image.name}", self._get, client, image_id)
        problems = verification_problems(record, data.size, data.checksum, expected_hash(image))
        if problems:
            raise FacadeError(f"image {image.name} failed verification: {'; '.join(problems)}")
        return record

    @staticmethod
    def _transfer_error(error: BaseException, image: Image) -> BaseException:
        """The exception to raise for a failed transfer (bugs and Ctrl-C unchanged)."""
        if isinstance(error, FacadeError):
            return error
        if isinstance(error, ChecksumMismatch):
            return FacadeError(f"refused to upload image {image.name}: {error}")
        if isinstance(error, SourceError):
            return FacadeError(f"uploading image {image.name}: {error}")
        if isinstance(error, CLIENT_ERRORS):
            return facade_error(error, f"uploading image {image.name}")
        return error

    def _discard(self, client: glance_client.Client, region: str, image_id: str, name: str) -> None:
        """Delete a half-made image; a failure here must not hide the original one.

        Right after an aborted transfer Glance may still be winding the upload down: a
        delete can then fail (HTTP 500) or the image can come back ``queued``. So delete
        until a read says it is gone, for a bounded time; a server that cannot be
        reached at all is given up on sooner, and the next run removes the leftover.
        """
        deadline = time.monotonic() + DISCARD_SECONDS
        delay, unreachable = 0.2, 0
        while True:
            problem = self._delete_and_check(client, image_id)
            if problem is None:
                logger.info("%s: deleted the unfinished copy of %s (%s)", region, name, image_id)
                return
            unreachable = unreachable + 1 if problem.startswith("cannot connect") else 0
            if unreachable >= RETRY_ATTEMPTS or time.monotonic() + delay > deadline:
                logger.warning(
                    "%s: could not delete the unfinished image %s (%s); the next run removes it",
                    region,
                    image_id,
                    problem,
                )
                return
            logger.debug("%s: deleting %s again: %s", region, image_id, problem)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    @staticmethod
    def _delete_and_check(client: glance_client.Client, image_id: str) -> str | None:
        """Delete, then read back: None once the image is gone, else what is wrong.

        While Glance still reports ``saving`` its upload handler has not finished with
        the aborted request, and deleting now races with it; so wait for that first.
        """
        try:
            record = client.images.get(image_id)
            if record.get("status") != "saving":
                client.images.delete(image_id)
                record = client.images.get(image_id)
        except glance_exc.HTTPNotFound:
            return None
        except CLIENT_ERRORS as error:
            return describe(error, "deleting").removeprefix("deleting: ")
        return f"it is still there, {record.get('status')}"

    def _remove_unfinished(self, client: glance_client.Client, where: RegionRef, name: str) -> None:
        """Delete our images called ``name`` left unfinished by an earlier run.

        They never had data (or only part of it), so nothing is lost; left alone they
        would stay in the catalog forever.
        """
        region = where.name
        listed = (self._listed_unfinished or {}).get(region)
        if listed is not None:  # this run listed the region: two requests saved
            records = listed.pop(name, [])
        else:
            filters = {"owner": self.project_id()}
            if not name.startswith("in:"):  # Glance reads "in:a,b" as a list of names
                filters["name"] = name
            records = self._call(
                "looking for unfinished uploads", lambda: self._records(client, **filters)
            )
        for record in records:
            if record.get("name") != name or not self._is_our_leftover(record):
                continue
            logger.warning(
                "%s: removing image %s (%s), left %s by an earlier interrupted upload",
                region,
                name,
                record["id"],
                record.get("status"),
            )
            try:
                self.delete(where, record["id"])
            except FacadeError as error:
                # Reported, not fatal: a non-active image is never taken for a copy.
                logger.warning("%s: could not remove image %s: %s", region, record["id"], error)

    def close(self) -> None:
        for session in (self._session, self._listing_session):
            session.session.close()
        self._clients.clear()
        self._schemas.clear()  # they go with the clients that read them
