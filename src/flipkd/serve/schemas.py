"""Request and response bodies, the limits on them, and strict body parsing.

Bodies are parsed here rather than by FastAPI so that every bad input gets a
4xx with a one-line message: empty (400), not UTF-8 (400), malformed or too
deeply nested JSON (400), too large (413), wrong shape, type or size (422).
Limits that depend on the server's settings reach the validators through
pydantic's validation ``context``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may ask for.

    Attributes:
        max_body_bytes: Largest request body (413 above it).
        max_text_chars: Longest query or pair text.
        max_pairs: Most pairs per ``/match`` request.
        max_k: Largest ``k`` for ``/search``.
        rerank_candidates: How many cosine candidates ``rerank`` rescores.
    """

    max_body_bytes: int = 64 * 1024
    max_text_chars: int = 2000
    max_pairs: int = 64
    max_k: int = 50
    rerank_candidates: int = 20


class ApiError(Exception):
    """A client error with its HTTP status and a message for the client."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _limits(info: ValidationInfo) -> Limits:
    return info.context if isinstance(info.context, Limits) else Limits()


def _check_text(text: str, info: ValidationInfo, what: str) -> str:
    if not text.strip():
        raise ValueError(f"{what} is empty")
    limit = _limits(info).max_text_chars
    if len(text) > limit:
        raise ValueError(f"{what} has {len(text)} characters; the limit is {limit}")
    return text


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchRequest(_Body):
    """``POST /search``: the query, how many FAQs, and whether to re-rank."""

    query: StrictStr
    k: StrictInt = 5
    rerank: StrictBool = False

    @field_validator("query")
    @classmethod
    def _query(cls, value: str, info: ValidationInfo) -> str:
        return _check_text(value, info, "query")

    @field_validator("k")
    @classmethod
    def _k(cls, value: int, info: ValidationInfo) -> int:
        limit = _limits(info).max_k
        if not 1 <= value <= limit:
            raise ValueError(f"k must be between 1 and {limit}")
        return value


Pair = Annotated[list[StrictStr], Field(min_length=2, max_length=2)]


class MatchRequest(_Body):
    """``POST /match``: pairs of texts and the scoring mode."""

    pairs: list[Pair]
    mode: Literal["gen", "rep"] = "gen"

    @field_validator("pairs")
    @classmethod
    def _pairs(cls, value: list[list[str]], info: ValidationInfo) -> list[list[str]]:
        limit = _limits(info).max_pairs
        if not 1 <= len(value) <= limit:
            raise ValueError(f"send between 1 and {limit} pairs (got {len(value)})")
        for n, (a, b) in enumerate(value):
            _check_text(a, info, f"pairs[{n}][0]")
            _check_text(b, info, f"pairs[{n}][1]")
        return value


class SearchHit(BaseModel):
    """One FAQ entry in a search answer."""

    rank: int
    id: str
    question: str
    answer: str
    score: float = Field(description="cosine, or the generated-label score when re-ranked")
    cosine: float


class SearchResponse(BaseModel):
    """Answer to ``POST /search``."""

    query: str
    k: int
    rerank: bool
    results: list[SearchHit]


class PairScore(BaseModel):
    """Score and decision for one pair."""

    score: float
    label: bool


class MatchResponse(BaseModel):
    """Answer to ``POST /match``."""

    mode: str
    threshold: float
    results: list[PairScore]


BodyT = TypeVar("BodyT", bound=BaseModel)


def _summarise(err: ValidationError, limit: int = 3) -> str:
    parts = []
    for e in err.errors(include_url=False)[:limit]:
        where = ".".join(str(p) for p in e["loc"]) or "body"
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    more = err.error_count() - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def parse_body(body: bytes, model: type[BodyT], limits: Limits) -> BodyT:
    """Decode a request body into ``model``, or raise :class:`ApiError` (4xx)."""
    if len(body) > limits.max_body_bytes:
        raise ApiError(413, f"request body over {limits.max_body_bytes} bytes")
    if not body.strip():
        raise ApiError(400, "empty request body; send a JSON object")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ApiError(400, f"request body is not UTF-8 (bad byte at offset {err.start})") from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        where = f"line {err.lineno} column {err.colno}"
        raise ApiError(400, f"malformed JSON: {err.msg} at {where}") from err
    except RecursionError as err:
        raise ApiError(400, "malformed JSON: nested too deeply") from err
    if not isinstance(data, dict):
        raise ApiError(422, "request body must be a JSON object")
    try:
        return model.model_validate(data, context=limits)
    except ValidationError as err:
        raise ApiError(422, _summarise(err)) from err
