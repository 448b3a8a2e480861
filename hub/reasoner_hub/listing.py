"""Repo listings: ``GET /api/models``, ``/api/datasets`` and ``/api/spaces``, as ``list_models`` and
``hf models ls`` call them.

Supported query parameters: ``author`` (namespace), ``search`` (substrings of the repo id, all must
match, case-insensitive), ``filter`` (tags, all must be present), ``pipeline_tag``, ``gated``
(no repo here is gated), ``sort`` (``id``, ``createdAt``, ``lastModified``, and ``downloads``,
``likes``, ``trendingScore``, which are all 0 here) with ``direction`` (default: descending for an
explicit sort, by id ascending without one), ``limit``, ``full``, ``cardData``, ``expand``. Pages
follow the ``Link: <...cursor=N>; rel="next"`` header, as huggingface_hub's paginator expects.
Filters this hub cannot answer (inference providers, apps, parameter counts) are refused with 400
rather than ignored. A private repo is listed only to callers allowed to read it. A repo being
created, moved or deleted (its record carries a ``state``, see ``lifecycle.py``) is never listed:
the listing goes through ``RepoStore.meta``, like every route, so half a repo never shows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from urllib.parse import urlencode

from reasoner_hub import errors, permissions
from reasoner_hub.cards import CardReader
from reasoner_hub.commits import Commit, RepoMeta
from reasoner_hub.errors import HubError
from reasoner_hub.paths import PLURALS, Repo, repo_from_parts, valid_namespace
from reasoner_hub.repos import RepoStore
from reasoner_hub.transport import Request, Response, json_response

UNSUPPORTED = ("apps", "inference", "inference_provider", "num_parameters", "config", "emissions_thresholds")
SORT_KEYS = ("id", "createdAt", "lastModified", "downloads", "likes", "trendingScore")
ZERO_STATS = ("downloads", "likes", "trendingScore")


def repo_object_id(repo: Repo) -> str:
    """A stable 24-hex ``_id`` per repo, like the Hub's object ids."""
    return hashlib.sha1(repo.label.encode()).hexdigest()[:24]


@dataclass
class ListQuery:
    author: str | None = None
    search: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    pipeline_tag: str | None = None
    gated: bool | None = None
    sort: str | None = None
    descending: bool = False
    limit: int | None = None
    cursor: int = 0
    full: bool = False
    card_data: bool = False
    expand: list[str] = field(default_factory=list)

    @staticmethod
    def parse(req: Request) -> ListQuery:
        """The query of a listing request; 400 with one line for what cannot be answered."""
        for name in UNSUPPORTED:
            if name in req.query:
                raise errors.bad_request(f"This hub cannot filter repos by {name!r}: drop that option")
        sort = req.arg("sort")
        if sort is not None and sort not in SORT_KEYS:
            raise errors.bad_request(f"Invalid sort {sort!r}: use one of {', '.join(SORT_KEYS)}")
        direction = req.arg("direction")
        try:
            limit = int(req.arg("limit")) if req.arg("limit") else None
            cursor = int(req.arg("cursor") or 0)
        except ValueError:
            raise errors.bad_request("limit and cursor must be integers") from None
        if (limit is not None and limit < 1) or cursor < 0:
            raise errors.bad_request("limit must be positive and cursor not negative")
        gated = req.arg("gated")
        return ListQuery(
            author=req.arg("author") or None,
            search=[value.lower() for value in req.query.get("search", []) if value],
            tags=[tag for value in req.query.get("filter", []) for tag in value.split(",") if tag],
            pipeline_tag=req.arg("pipeline_tag") or None,
            gated=None if gated is None else gated.lower() in ("1", "true"),
            sort=sort,
            descending=direction != "1" if sort is not None else direction == "-1",
            limit=limit,
            cursor=cursor,
            full=req.flag("full"),
            card_data=req.flag("cardData"),
            expand=[item for value in req.query.get("expand", []) for item in value.split(",") if item],
        )


@dataclass
class _Listed:
    repo: Repo
    meta: RepoMeta
    commit: Commit
    fields: dict  # the card's fields (tags, cardData, ...)


class ListingRoutes:
    """A mixin of HubApp (routes.py), which provides ``store``, ``cards`` and ``list_page_size``."""

    store: RepoStore
    cards: CardReader
    list_page_size: int

    def list_repos(self, req: Request, kind: str) -> Response:
        query = ListQuery.parse(req)
        if query.gated:
            return json_response([])  # no repo of this hub is gated
        listed = [entry for entry in self._visible(req, kind, query) if _matches(entry, query)]
        _sort(listed, query)
        size = min(query.limit or self.list_page_size, self.list_page_size)
        page = listed[query.cursor : query.cursor + size]
        headers = {}
        if query.cursor + size < len(listed):
            pairs = [(k, v) for k, values in req.query.items() if k != "cursor" for v in values]
            link = f"{req.base_url}{req.path}?{urlencode(pairs + [('cursor', str(query.cursor + size))])}"
            headers["Link"] = f'<{link}>; rel="next"'
        return json_response([_item(entry, query) for entry in page], headers=headers)

    def _visible(self, req: Request, kind: str, query: ListQuery):
        """Each existing repo of this type the caller may read, with its head commit and card."""
        for repo in self._stored_repos(kind, query.author):
            if query.search and not all(word in repo.id.lower() for word in query.search):
                continue
            meta = self.store.meta(repo)
            if meta is None or not permissions.can_read(req.principal, repo, meta.private):
                continue
            try:
                commit = self.store.resolve(repo, None)
            except HubError:
                continue  # no main branch (yet): not a usable repo
            yield _Listed(repo, meta, commit, self.cards.fields(repo, commit))

    def _stored_repos(self, kind: str, author: str | None):
        plural = PLURALS[kind]
        storage = self.store.storage
        if author is not None and not valid_namespace(author):
            return
        for org in [author] if author is not None else storage.list_folders(plural + "/"):
            if not valid_namespace(org):
                continue
            for name in storage.list_folders(f"{plural}/{org}/"):
                try:
                    yield repo_from_parts(kind, org, name)
                except HubError:
                    continue  # not a repo folder


def _matches(entry: _Listed, query: ListQuery) -> bool:
    tags = entry.fields.get("tags", [])
    if query.tags and not all(tag in tags for tag in query.tags):
        return False
    return query.pipeline_tag is None or entry.fields.get("pipeline_tag") == query.pipeline_tag


def _sort(listed: list[_Listed], query: ListQuery) -> None:
    listed.sort(key=lambda entry: entry.repo.id)
    if query.sort in ("createdAt", "lastModified"):
        date = (lambda e: e.meta.created_at) if query.sort == "createdAt" else (lambda e: e.commit.date)
        listed.sort(key=date, reverse=query.descending)  # stable: ties stay by id
    elif query.sort == "id" or query.sort is None:
        listed.sort(key=lambda entry: entry.repo.id, reverse=query.descending)


def _item(entry: _Listed, query: ListQuery) -> dict:
    repo, fields = entry.repo, entry.fields
    item: dict = {
        "_id": repo_object_id(repo),
        "id": repo.id,
        "author": permissions.namespace(repo),
        "private": entry.meta.private,
        "gated": False,
        "disabled": False,
        "createdAt": entry.meta.created_at,
        "lastModified": entry.commit.date,
        "sha": entry.commit.id,
        **{name: 0 for name in ZERO_STATS},
        **{k: v for k, v in fields.items() if k != "cardData"},
    }
    if repo.type == "model":
        item["modelId"] = repo.id
    if (query.card_data or query.full or "cardData" in query.expand) and "cardData" in fields:
        item["cardData"] = fields["cardData"]
    if query.full or "siblings" in query.expand:
        item["siblings"] = [{"rfilename": path} for path in sorted(entry.commit.files)]
    if query.expand:
        keep = set(query.expand) | {"_id", "id"}
        item = {k: v for k, v in item.items() if k in keep}
    return item
