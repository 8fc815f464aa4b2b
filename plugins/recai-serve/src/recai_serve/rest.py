"""The REST API of ``recai serve RECIPE``: recommend, similar items, search, explain, items; and
its OpenAPI document (``GET /openapi.json``) with a docs page (``GET /docs``).

Bodies are checked by pydantic models (``extra="forbid"``, so a misspelt field is a 400 naming
it); the same models give the OpenAPI schema, so the document and the checks cannot drift
apart. Items are named by the catalog's external ids (``"50"`` in MovieLens); an id that is not
in the catalog, or a user the dataset lacks, is a 404 naming the field. A route whose kind of
component the recipe lacks (no ranker for ``/v1/recommend``, no Explainer for
``/v1/explain``) answers 501 saying what to add.

Why not FastAPI: the app already is Starlette with the LLM server's limits, cancellation,
errors in OpenAI's shape and key check, which FastAPI would wrap but not replace (its 422
validation errors, its own body reading); pydantic, which the kernel already requires, gives
the schemas, and the document is assembled here from the same models. No new dependency.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from recai.data.context import MAX_CONTEXT_ITEMS
from recai.errors import RecaiError

from .protocol import APIError

if TYPE_CHECKING:
    from .agentapp import _AgentService
    from .app import _Service
    from .metrics import Metrics
    from .served import Served

__all__ = [
    "RestAPI",
    "FeedbackBody",
    "RecommendBody",
    "SearchBody",
    "ExplainBody",
    "openapi",
    "openapi_routes",
    "MAX_K",
]

MAX_K = 1000
"""The most items one REST answer lists."""

ItemId = StrictStr | StrictInt
M = TypeVar("M", bound=BaseModel)


# -- request and answer models ---------------------------------------------------------------------
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FeedbackBody(_Body):
    """A like or dislike of an item, into the agent's long-term profile of the user."""

    model: StrictStr | None = Field(None, description="the agent (optional when one is served)")
    item: ItemId = Field(description="the item's external id in the catalog")
    value: Literal["like", "dislike"]
    user: ItemId | None = Field(None, description="the user's id (or give their session)")
    session: StrictStr | None = Field(None, description="a session whose user it is")


class RecommendBody(_Body):
    """Top-k items for a known user, or for a history of item ids (or both: the history is
    added after the user's)."""

    model: StrictStr | None = Field(None, description="the ranker (optional when one is served)")
    user: ItemId | None = Field(None, description="a user of the dataset")
    history: list[ItemId] | None = Field(
        None, max_length=MAX_CONTEXT_ITEMS, description="item ids, oldest first"
    )
    k: int = Field(10, ge=1, le=MAX_K)
    exclude_history: bool = Field(True, description="leave out the items of the history")


class SearchBody(_Body):
    """Items for a text query, from a retriever that reads text (e.g. embedding.v1)."""

    query: str = Field(min_length=1, max_length=2000)
    model: StrictStr | None = Field(None, description="the retriever")
    k: int = Field(10, ge=1, le=MAX_K)


class ExplainBody(_Body):
    """Why an item suits a user (a known user or a history)."""

    item: ItemId
    user: ItemId | None = None
    history: list[ItemId] | None = Field(None, max_length=MAX_CONTEXT_ITEMS)
    model: StrictStr | None = Field(None, description="the explainer")


class ItemOut(BaseModel):
    id: ItemId
    title: str
    score: float | None = None
    attributes: dict[str, Any] = Field(default_factory=dict, description="catalog columns")


class ItemsOut(BaseModel):
    object: Literal["list"] = "list"
    model: str
    items: list[ItemOut]


class ExplanationOut(BaseModel):
    model: str
    item: ItemOut
    text: str
    evidence: dict[str, Any]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorOut(BaseModel):
    """OpenAI's error shape."""

    error: ErrorDetail


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatBody(BaseModel):
    """An OpenAI chat request. With ``session``: ``"new"`` starts a kept conversation, an id
    continues one (send only the new user message); without it the messages are the whole
    conversation. ``user`` names the user: the agent gets their history and profile."""

    model: str = Field(description="an agent (or an LLM backend) of this server")
    messages: list[ChatMessage]
    stream: bool = False
    user: str | None = None
    session: str | None = None


class RecaiItem(BaseModel):
    id: ItemId
    title: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    attributes: dict[str, Any] = Field(default_factory=dict)


def _listed_first(name: str) -> ConfigDict:
    """The config that lists field ``name`` first in a model's JSON schema (pydantic lists a
    subclass's own fields after its base's)."""

    def move(schema: dict[str, Any]) -> None:
        props = schema["properties"]
        schema["properties"] = {name: props[name], **props}
        required = schema.get("required", [])
        if name in required:
            schema["required"] = [name, *(r for r in required if r != name)]

    return ConfigDict(json_schema_extra=move)


class _Turn(BaseModel):
    """What an agent's turn showed besides its text: the fields a chat answer's ``recai``
    (:class:`RecaiOut`) and a kept session's agent message (:class:`TurnOut`) share."""

    user: str | None
    items: list[RecaiItem]
    trace: list[Any]
    plan: Any
    llm_calls: int
    seconds: float
    profile: dict[str, Any]


class RecaiOut(_Turn):
    """What recai adds to a chat answer (OpenAI clients ignore it)."""

    model_config = _listed_first("session")

    session: str | None


class ChatOut(BaseModel):
    """A ``chat.completion`` (streamed: ``chat.completion.chunk`` events; the one with
    ``finish_reason`` carries ``recai``)."""

    id: str
    object: Literal["chat.completion"]
    model: str
    choices: list[dict[str, Any]]
    recai: RecaiOut


class FeedbackOut(BaseModel):
    profile: dict[str, Any]


class TurnOut(_Turn):
    """What an agent's turn showed besides its text, kept with it in the session."""

    model_config = _listed_first("model")

    model: str = Field(description="the agent that answered")


class SessionMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str
    recai: TurnOut | None = Field(
        None, description="an agent's message: its turn's items, plan and trace"
    )


class SessionOut(BaseModel):
    """A kept conversation, oldest message first (DELETE answers ``{"id", "deleted": true}``).
    The oldest turns of a long one may have lost their ``recai`` data (their text stays)."""

    id: str
    user: str | None
    messages: list[SessionMessage]
    created: float
    updated: float
    profile: dict[str, Any] = Field(
        default_factory=dict, description="the user's profile as the agent keeps it now"
    )


# -- data helpers ----------------------------------------------------------------------------------
def plain(value: Any) -> Any:
    """A numpy scalar as its Python value."""
    item = getattr(value, "item", None)
    return item() if callable(item) and not isinstance(value, (str, bytes)) else value


def item_index(catalog: Any, raw: Any) -> int | None:
    """The catalog index of an external item id, read leniently (``50`` finds ``"50"`` and the
    other way round); None when the catalog lacks it."""
    if raw is None or isinstance(raw, bool):
        return None
    tries: list[Any] = [raw, str(raw)]
    if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
        tries.append(int(raw))
    for key in tries:
        try:
            if key in catalog:
                return int(catalog.index(key))
        except (KeyError, TypeError, RecaiError):
            continue
    return None


def user_index(dataset: Any, raw: Any) -> int | None:
    """The dataset's index of an external user id (read as leniently), None when unknown."""
    if raw is None or isinstance(raw, bool):
        return None
    tries: list[Any] = [raw, str(raw)]
    if isinstance(raw, str) and raw.strip().isdigit():
        tries.append(int(raw))
    for key in tries:
        try:
            return int(dataset.user_index(key))
        except (KeyError, TypeError, ValueError, RecaiError):
            continue
    return None


def attributes(catalog: Any, index: int) -> dict[str, Any]:
    """The catalog's columns of one item as JSON values (tuples as lists, NaN and NaT as
    null, whole floats as integers, dates as ISO text).

    >>> from recai.data import Catalog
    >>> cat = Catalog(["a", "b"], ["A", "B"], fields={"year": np.array([1991.0, np.nan]),
    ...     "genres": np.array([("Drama",), ()], dtype=object)})
    >>> attributes(cat, 0), attributes(cat, 1)
    ({'year': 1991, 'genres': ['Drama']}, {'year': None, 'genres': []})
    """
    out: dict[str, Any] = {}
    for name, column in catalog.fields.items():
        value = column[index]
        if isinstance(value, tuple):
            value = list(value)
        elif hasattr(value, "dtype") and str(getattr(value, "dtype", "")).startswith("datetime64"):
            text = str(value)
            value = None if text == "NaT" else text
        else:
            value = plain(value)
            if isinstance(value, float) and not math.isfinite(value):
                value = None
            elif isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
                value = int(value)  # a year read as a float column (NaN for missing): 1991
        out[name] = value
    return out


def unknown_item(dataset: Any, raw: Any, field: str) -> APIError:
    shown = str(raw)[:80]
    return APIError(
        404,
        f"{field}: item {shown!r} is not in the catalog of dataset {dataset.name!r} "
        f"({dataset.catalog.n_items:,} items, ids like {plain(dataset.catalog.ids[0])!r})",
        param=field,
        code="item_not_found",
    )


def unknown_user(dataset: Any, raw: Any) -> APIError:
    return APIError(
        404,
        f"user: {str(raw)[:80]!r} is not a user of dataset {dataset.name!r}",
        param="user",
        code="user_not_found",
    )


def parse(model: type[M], body: Mapping[str, Any]) -> M:
    """``body`` checked by ``model``; the first problem is a 400 naming its field."""
    try:
        return model.model_validate(body)
    except ValidationError as e:
        first = e.errors()[0]
        where = ""
        for part in first["loc"]:
            where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
        message = first["msg"]
        if first["type"] == "extra_forbidden":
            known = ", ".join(model.model_fields)
            message = f"unknown field (this route takes {known})"
        raise APIError(400, f"{where or 'body'}: {message}", param=where or None) from None


# -- the routes ------------------------------------------------------------------------------------
class RestAPI:
    """The REST routes over ``served``'s rankers, retrievers, explainers and dataset."""

    def __init__(
        self, service: _Service, served: Served, agents: _AgentService, metrics: Metrics
    ) -> None:
        self.service = service
        self.served = served
        self.agents = agents
        self.metrics_ = metrics

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/recommend", self.recommend, methods=["POST"]),
            Route("/v1/search", self.search, methods=["POST"]),
            Route("/v1/explain", self.explain, methods=["POST"]),
            Route("/v1/items/{item_id}", self.item, methods=["GET"]),
            Route("/v1/items/{item_id}/similar", self.similar, methods=["GET"]),
        ]

    # -- helpers -----------------------------------------------------------------------------------
    def dataset(self, route: str) -> Any:
        if self.served.dataset is None:
            raise APIError(
                501,
                f"{route} needs the recipe's dataset (its items and users); this server has none",
                type="server_error",
                code="not_implemented",
            )
        return self.served.dataset

    def pick(
        self, table: Mapping[str, Any], name: str | None, kind: str, example: str
    ) -> tuple[str, Any]:
        if name is None and len(table) == 1:
            return next(iter(table.items()))
        if not table:
            raise APIError(
                501,
                f"this server has no {kind}: add one to the recipe (e.g. {example})",
                type="server_error",
                code="not_implemented",
            )
        listing = ", ".join(table)
        if name is None:
            raise APIError(400, f"name the {kind}, model: one of {listing}", param="model")
        if name not in table:
            raise APIError(
                404,
                f"model: {name[:80]!r} is not a {kind} of this server; {kind}s: {listing}",
                param="model",
                code="model_not_found",
            )
        return name, table[name]

    def history(
        self, dataset: Any, user: Any, items: Sequence[Any] | None
    ) -> tuple[list[int], int | None]:
        """The item indices of ``user``'s history followed by ``items``, and the user's index."""
        index = None
        hist: list[int] = []
        if user is not None:
            index = user_index(dataset, user)
            if index is None:
                raise unknown_user(dataset, user)
            hist = dataset.interactions.history(index).tolist()
        for i, raw in enumerate(items or ()):
            found = item_index(dataset.catalog, raw)
            if found is None:
                raise unknown_item(dataset, raw, f"history[{i}]")
            hist.append(found)
        return hist, index

    def items(
        self, dataset: Any, ranked: Any, k: int, drop: int | None = None
    ) -> list[dict[str, Any]]:
        ids = ranked.ids.tolist()
        scores = ranked.scores.tolist() if ranked.scores is not None else [None] * len(ids)
        out = []
        for index, score in zip(ids, scores, strict=True):
            if index == drop:
                continue
            out.append(self.item_out(dataset, int(index), score))
        return out[:k]

    def item_out(self, dataset: Any, index: int, score: float | None = None) -> dict[str, Any]:
        catalog = dataset.catalog
        entry: dict[str, Any] = {"id": plain(catalog.ids[index]), "title": catalog.title(index)}
        if score is not None:
            entry["score"] = None if not math.isfinite(score) else round(float(score), 6)
        entry["attributes"] = attributes(catalog, index)
        return entry

    async def call(self, model: str, kind: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """A component's call in a REST worker thread; what it refuses is a 400 naming it."""
        try:
            return await self.agents.thread(fn, *args, **kwargs)
        except NotImplementedError as e:
            raise APIError(
                400, f"the {kind} {model!r} cannot do this: {e}", param="model", code="unsupported"
            ) from None
        except (RecaiError, ValueError, TypeError, KeyError, IndexError) as e:
            raise APIError(
                400, f"the {kind} {model!r} refused: {type(e).__name__}: {e}", param="model"
            ) from None

    async def body(self, request: Request, model: type[M]) -> M:
        return parse(model, await self.service.json_body(request))

    # -- routes ------------------------------------------------------------------------------------
    async def recommend(self, request: Request) -> Response:
        from .agentapp import json_response

        body = await self.body(request, RecommendBody)
        dataset = self.dataset("/v1/recommend")
        name, ranker = self.pick(self.served.rankers, body.model, "ranker", "sasrec.v1")
        if body.user is None and not body.history:
            raise APIError(
                400, "give user (a user of the dataset) or history (item ids)", param="user"
            )
        hist, index = await self.agents.thread(self.history, dataset, body.user, body.history)
        ranked = await self.call(
            name,
            "ranker",
            ranker.rank,
            hist,
            k=body.k,
            user=index,
            exclude_history=body.exclude_history,
        )
        return json_response(
            {"object": "list", "model": name, "items": self.items(dataset, ranked, body.k)}
        )

    async def similar(self, request: Request) -> Response:
        from recai.types import ItemList, Query

        from .agentapp import json_response

        dataset = self.dataset("/v1/items/{item_id}/similar")
        raw = request.path_params["item_id"]
        index = item_index(dataset.catalog, raw)
        if index is None:
            raise unknown_item(dataset, raw, "item_id")
        k = _query_int(request, "k", 10, 1, MAX_K)
        name, retriever = self.pick(
            self.served.retrievers, request.query_params.get("model"), "retriever", "itemknn.v1"
        )
        query = Query(items=ItemList(np.asarray([index], dtype=np.int64)))
        found = await self.call(name, "retriever", retriever.retrieve, query, k + 1)
        return json_response(
            {"object": "list", "model": name, "items": self.items(dataset, found, k, drop=index)}
        )

    async def search(self, request: Request) -> Response:
        from recai.types import Query

        from .agentapp import json_response

        body = await self.body(request, SearchBody)
        dataset = self.dataset("/v1/search")
        name, retriever = self.pick(self.served.retrievers, body.model, "retriever", "embedding.v1")
        found = await self.call(
            name, "retriever", retriever.retrieve, Query(text=body.query), body.k
        )
        return json_response(
            {"object": "list", "model": name, "items": self.items(dataset, found, body.k)}
        )

    async def explain(self, request: Request) -> Response:
        from recai.types import ItemList

        from .agentapp import json_response

        body = await self.body(request, ExplainBody)
        name, explainer = self.pick(
            self.served.explainers, body.model, "explainer", "an Explainer component"
        )
        dataset = self.dataset("/v1/explain")
        index = item_index(dataset.catalog, body.item)
        if index is None:
            raise unknown_item(dataset, body.item, "item")
        hist, _ = await self.agents.thread(self.history, dataset, body.user, body.history)
        out = await self.call(
            name, "explainer", explainer.explain, ItemList(np.asarray(hist, dtype=np.int64)), index
        )
        return json_response(
            {
                "model": name,
                "item": self.item_out(dataset, index),
                "text": out.text,
                "evidence": dict(out.evidence),
            }
        )

    async def item(self, request: Request) -> Response:
        from .agentapp import json_response

        dataset = self.dataset("/v1/items/{item_id}")
        raw = request.path_params["item_id"]
        index = item_index(dataset.catalog, raw)
        if index is None:
            raise unknown_item(dataset, raw, "item_id")
        return json_response(self.item_out(dataset, index))

    async def metrics(self, request: Request) -> Response:
        from .agentapp import json_response

        if request.query_params.get("format") == "prometheus":
            return Response(self.metrics_.prometheus(), media_type="text/plain; version=0.0.4")
        snap = self.metrics_.snapshot()
        snap["sessions"] = await anyio.to_thread.run_sync(len, self.agents.sessions)
        return json_response(snap)


def _query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise APIError(
            400,
            f"{name} must be a whole number from {low} to {high}, got {text[:20]!r}",
            param=name,
        )
    return int(text)


# -- OpenAPI ---------------------------------------------------------------------------------------
_ERRORS = {
    "400": "a bad request (the message names the field)",
    "401": "no or a wrong API key",
    "404": "an unknown model, session, item or user",
    "429": "too many requests",
    "503": "busy or shutting down",
}

# path, method, summary, body model, answer model, tag
_OPERATIONS: tuple[
    tuple[str, str, str, type[BaseModel] | None, type[BaseModel] | None, str], ...
] = (
    (
        "/v1/chat/completions",
        "post",
        "Chat with an agent (OpenAI's API; streaming with stream: true)",
        ChatBody,
        ChatOut,
        "agents",
    ),
    (
        "/v1/feedback",
        "post",
        "Like or dislike an item: into the agent's profile of the user",
        FeedbackBody,
        FeedbackOut,
        "agents",
    ),
    ("/v1/models", "get", "The agents and LLM backends served", None, None, "agents"),
    (
        "/v1/sessions/{session_id}",
        "get",
        "A kept session's user and messages, each agent turn with its items, plan and trace",
        None,
        SessionOut,
        "agents",
    ),
    ("/v1/sessions/{session_id}", "delete", "Forget a kept session", None, None, "agents"),
    (
        "/v1/recommend",
        "post",
        "Top-k items for a user or a history, from a ranker",
        RecommendBody,
        ItemsOut,
        "recommend",
    ),
    (
        "/v1/items/{item_id}/similar",
        "get",
        "Items similar to one item, from a retriever",
        None,
        ItemsOut,
        "recommend",
    ),
    (
        "/v1/search",
        "post",
        "Items for a text query, from a text retriever",
        SearchBody,
        ItemsOut,
        "recommend",
    ),
    (
        "/v1/explain",
        "post",
        "Why an item suits a user (501 without an Explainer)",
        ExplainBody,
        ExplanationOut,
        "recommend",
    ),
    (
        "/v1/items/{item_id}",
        "get",
        "One item of the catalog with its attributes",
        None,
        ItemOut,
        "recommend",
    ),
    ("/health", "get", "Whether the server is up, what it serves", None, None, "operations"),
    (
        "/metrics",
        "get",
        "Request counts and latency percentiles per route (?format=prometheus)",
        None,
        None,
        "operations",
    ),
)


def openapi(served: Served, paths: set[str] | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the routes in ``paths`` (default: all)."""
    from . import __version__

    schemas: dict[str, Any] = {}

    def ref(model: type[BaseModel]) -> dict[str, str]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            schemas[name] = sub
        schemas[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    error_ref = ref(ErrorOut)
    out: dict[str, Any] = {}
    for path, method, summary, body, answer, tag in _OPERATIONS:
        if paths is not None and path not in paths:
            continue
        op: dict[str, Any] = {"summary": summary, "tags": [tag]}
        params: list[dict[str, Any]] = []
        for name in ("item_id", "session_id"):
            if "{" + name + "}" in path:
                params.append(
                    {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                )
        if path.endswith("/similar"):
            params += [
                {
                    "name": "k",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 10},
                },
                {
                    "name": "model",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "the retriever",
                },
            ]
        if params:
            op["parameters"] = params
        if body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(body)}},
            }
        ok: dict[str, Any] = {"description": "OK"}
        if answer is not None:
            ok["content"] = {"application/json": {"schema": ref(answer)}}
        op["responses"] = {
            "200": ok,
            **{
                code: {"description": text, "content": {"application/json": {"schema": error_ref}}}
                for code, text in _ERRORS.items()
            },
        }
        out.setdefault(path, {})[method] = op
    served_text = "; ".join(
        f"{kind}: {', '.join(table)}"
        for kind, table in (
            ("agents", served.agents),
            ("LLM backends", served.backends),
            ("rankers", served.rankers),
            ("retrievers", served.retrievers),
            ("explainers", served.explainers),
        )
        if table
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "recai serve",
            "version": __version__,
            "description": "recai's agents and recommenders over HTTP. Serving "
            + served_text
            + ". Errors have OpenAI's shape. With an API key, every path needs it: send "
            "Authorization: Bearer <key>, or HTTP Basic credentials with the key as the password "
            "(what a browser sends after its login prompt; any user name).",
        },
        "paths": out,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
            },
        },
        "security": [{"bearer": []}, {"basic": []}],
    }


def openapi_routes(routes: Sequence[BaseRoute], served: Served) -> list[BaseRoute]:
    """``GET /openapi.json`` and ``GET /docs`` (a plain HTML page: nothing fetched from the
    web) for the routes present."""
    present = {getattr(r, "path", "") for r in routes}
    document = openapi(served, present)
    raw = json.dumps(document, ensure_ascii=False).encode()
    page = _docs_page(document).encode()

    async def spec(request: Request) -> Response:
        return Response(raw, media_type="application/json")

    async def docs(request: Request) -> Response:
        return HTMLResponse(page)

    return [
        Route("/openapi.json", spec, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
    ]


def _docs_page(document: dict[str, Any]) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>recai serve API</title>",
        "<style>body{font:15px system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
        "code,pre{background:#f4f4f4;padding:.1em .3em}pre{padding:.6em;overflow:auto}"
        "h2{margin-top:1.6em;border-bottom:1px solid #ddd}</style></head><body>",
        f"<h1>{e(document['info']['title'])} {e(document['info']['version'])}</h1>",
        f"<p>{e(document['info']['description'])}</p>",
        "<p>The machine-readable document: <a href='openapi.json'>openapi.json</a>.</p>",
    ]
    schemas = document["components"]["schemas"]
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            parts.append(
                f"<h2><code>{e(method.upper())} {e(path)}</code></h2><p>{e(op['summary'])}</p>"
            )
            body = op.get("requestBody")
            if body is not None:
                name = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
                parts.append(
                    f"<p>Body: <b>{e(name)}</b></p><pre>{e(json.dumps(schemas[name], indent=1))}</pre>"
                )
            for param in op.get("parameters", []):
                parts.append(f"<p>{e(param['in'])} parameter <code>{e(param['name'])}</code></p>")
    parts.append("</body></html>")
    return "".join(parts)
