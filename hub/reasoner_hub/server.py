"""``HubServer``: the hub in a background thread of the calling process (or of the CLI).

    with HubServer("/tmp/hub") as hub:           # or HubServer(S3Storage(...)), tokens=[...]
        os.environ["HF_ENDPOINT"] = hub.url      # for clients started after this point
        ...

``stop()`` closes the listening socket and every open keep-alive connection, so a stopped
server really answers no more requests and releases its hold on the storage (``storelock.py``:
``reasoner-hub gc`` refuses to run while any hub holds it); a new HubServer on the same storage serves everything
the old one stored.
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
from collections.abc import Iterable
from http.server import ThreadingHTTPServer
from pathlib import Path

from reasoner_hub.auth import Token, TokenBook, parse_token_arg
from reasoner_hub.backends import open_storage
from reasoner_hub.lfs import UrlSigner
from reasoner_hub.metrics import Metrics
from reasoner_hub.mirror import Mirror
from reasoner_hub.paths import Repo, repo_from_id
from reasoner_hub.recovery import recover
from reasoner_hub.repos import RepoStore
from reasoner_hub.routes import HubApp
from reasoner_hub.storage import Storage
from reasoner_hub.storelock import hold_for_serving
from reasoner_hub.transport import make_handler
from reasoner_hub.upstream import Upstream

log = logging.getLogger(__name__)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class HubServer:
    """An HF-compatible hub over ``storage`` (a Storage, a folder path, or ``s3://bucket[/prefix]``).

    ``tokens``: a TokenBook, Token objects or ``"NAME=TOKEN:ROLE"`` strings; none = open hub.
    ``upstream``: an HF-compatible endpoint to mirror missing repos and revisions from (``upstream_token``
    if it needs one); ``upstream_ttl_s``: check a mirrored ``main`` again once this old (None: never).
    ``request_log``: a JSONL file, one line per request. ``port=0`` picks a free port.
    ``xet=False`` serves the LFS protocol only (clients then need ``HF_HUB_DISABLE_XET=1`` to upload).
    ``legacy_send``: answer as hubs before the keep-alive fix did (headers and body in separate writes,
    Nagle on); internal, for ``bench/hub_latency.py`` only.
    """

    def __init__(
        self,
        storage: Storage | str | Path,
        host: str = "127.0.0.1",
        port: int = 0,
        tokens: TokenBook | Iterable[Token | str] | None = None,
        upstream: str | None = None,
        upstream_token: str | None = None,
        upstream_ttl_s: float | None = None,
        request_log: str | None = None,
        s3_endpoint: str | None = None,
        tree_page_size: int = 1000,
        xet: bool = True,
        legacy_send: bool = False,
    ) -> None:
        self.storage = storage if isinstance(storage, Storage) else open_storage(str(storage), s3_endpoint)
        if not isinstance(tokens, TokenBook):  # Token objects or "NAME=TOKEN:ROLE" strings
            tokens = TokenBook(parse_token_arg(t) if isinstance(t, str) else t for t in tokens or ())
        self.tokens = tokens
        # Held until stop(): gc refuses to run meanwhile, and this refuses to start while gc runs.
        self.hold = hold_for_serving(self.storage)
        self.store = RepoStore(self.storage)
        try:
            self.recovery = recover(self.store)  # before any request: finish or undo what a crash cut short
        except BaseException:
            self.hold.release()
            raise
        self.metrics = Metrics(request_log)
        self.upstream = Upstream(upstream, self.store, upstream_token) if upstream else None
        self.mirror = Mirror(self.upstream, upstream_ttl_s) if self.upstream else None
        self.app = HubApp(
            self.store,
            self.tokens,
            self.metrics,
            UrlSigner(secrets.token_bytes(32)),
            self.mirror,
            tree_page_size=tree_page_size,
            xet=xet,
        )
        self._legacy_send = legacy_send
        self._host, self._port = host, port
        self._httpd: _Server | None = None
        self._bound_port: int | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def store_repo(self, repo_type: str, repo_id: str) -> Repo:
        """The Repo object for ``repo_type``/``repo_id``, to inspect ``self.store`` directly."""
        return repo_from_id(repo_type, repo_id)

    def _track(self, connection: socket.socket, opened: bool) -> None:
        with self._connections_lock:
            if opened:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def start(self) -> HubServer:
        """Bind, then serve in a daemon thread; returns once the socket is listening."""
        if self._httpd is not None:
            return self
        handler = make_handler(self.app, self.metrics, self._track, legacy_send=self._legacy_send)
        self._httpd = _Server((self._host, self._port), handler)
        self._bound_port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="localhub", daemon=True
        )
        self._thread.start()
        log.info("reasoner-hub serving %s at %s", self.storage.description, self.url)
        return self

    @property
    def port(self) -> int:
        if self._bound_port is None:
            raise RuntimeError("HubServer is not started")
        return self._bound_port

    @property
    def url(self) -> str:
        host = self._host if self._host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        return f"http://{host}:{self.port}"

    def serve_forever(self) -> None:
        """Block until ``stop()`` (from a signal handler or another thread); at once if it was stopped already."""
        if self._thread is None:  # never started; a stopped server is not started again
            self.start()
        assert self._thread is not None
        while self._thread.is_alive():
            self._thread.join(0.5)

    def stop(self) -> None:
        """Stop serving and release the storage (gc may run on it from here)."""
        if self._httpd is None:
            self.hold.release()
            return
        httpd, self._httpd = self._httpd, None
        httpd.shutdown()
        httpd.server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(5)
        self.metrics.close()
        self.hold.release()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
