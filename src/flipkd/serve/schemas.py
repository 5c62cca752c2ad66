"""Request and response bodies, the limits on them, and strict body parsing.

Bodies are parsed here rather than by FastAPI so that every bad input gets a
4xx with a one-line message: empty (400), not UTF-8 (400), malformed or too
deeply nested JSON, a duplicate key, NaN/Infinity or an integer too long to
read (400), too large (413), wrong shape, type or size, or a text that is not
valid Unicode (422). Every text is checked here (:func:`~flipkd.serve.texts.text_problem`),
before it can join a micro-batch. Limits that depend on the server's settings
reach the validators through pydantic's validation ``context``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from flipkd.modes import RERANK_K_DEFAULT, PairMode
from flipkd.serve.texts import lone_surrogate, printable, text_problem


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
    rerank_candidates: int = RERANK_K_DEFAULT


class ApiError(Exception):
    """A client error with its HTTP status and a message for the client."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        message = printable(message)  # a message may quote a client's lone surrogate
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _limits(info: ValidationInfo) -> Limits:
    return info.context if isinstance(info.context, Limits) else Limits()


def _check_text(text: str, info: ValidationInfo, what: str) -> str:
    problem = text_problem(text, _limits(info).max_text_chars)
    if problem is not None:
        raise ValueError(f"{what} {problem}")
    return text


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchRequest(_Body):
    """``POST /search``: the query, how many FAQs, whether to re-rank, and how much of the
    cosine to mix into the re-ranking score (1: the generated label alone; left out: the
    server's default, ``flipkd serve --rerank-weight``, which is
    :data:`flipkd.modes.RERANK_WEIGHT_DEFAULT` (chosen on dev FAQs) unless set)."""

    query: StrictStr
    k: StrictInt = 5
    rerank: StrictBool = False
    rerank_weight: StrictFloat | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)

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
    mode: PairMode = "gen"

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
    answer: str | None = Field(description="null when the FAQ file gives no answer")
    score: float = Field(
        description="cosine; when re-ranked the generated-label score, or with rerank_weight < 1 "
        "the mixed score that ordered the results"
    )
    cosine: float
    label_score: float | None = Field(
        default=None, description="the generated-label score when re-ranked, else null"
    )


class SearchResponse(BaseModel):
    """Answer to ``POST /search`` (``rerank_weight``: the weight used, the request's or the
    server's default)."""

    query: str
    k: int
    rerank: bool
    rerank_weight: float
    results: list[SearchHit]


class PairScore(BaseModel):
    """Score and decision for one pair."""

    score: float = Field(
        description="gen: P(positive label word), 0..1; rep: cosine of the A-tap "
        "representations, -1..1 (the scale of /search's cosine); mix: the two mixed on the "
        "model's dev scales, w·z(logit gen) + (1−w)·z(rep), unbounded"
    )
    label: bool = Field(description="score >= threshold")


class MatchResponse(BaseModel):
    """Answer to ``POST /match``."""

    mode: str
    threshold: float = Field(description="the model's threshold for this mode, on its scale")
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


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    data: dict[str, object] = {}
    for key, value in pairs:
        if lone_surrogate(key) is not None:
            raise ApiError(422, f"key '{key}' has a lone surrogate; keys must be valid Unicode")
        if key in data:
            raise ApiError(400, f"malformed JSON: duplicate key {key!r} in an object")
        data[key] = value
    return data


def _no_constant(name: str) -> object:
    raise ApiError(400, f"malformed JSON: {name} is not a JSON number")


def _load_json(text: str) -> object:
    """``json.loads`` that refuses what the standard module lets through silently."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        where = f"line {err.lineno} column {err.colno}"
        raise ApiError(400, f"malformed JSON: {err.msg} at {where}") from err
    except RecursionError as err:
        raise ApiError(400, "malformed JSON: nested too deeply") from err
    except ValueError as err:  # an integer of more digits than Python converts (4300)
        raise ApiError(400, "malformed JSON: a number has too many digits") from err


def parse_body(body: bytes, model: type[BodyT], limits: Limits) -> BodyT:
    """Decode a request body into ``model``, or raise :class:`ApiError` (4xx)."""
    if len(body) > limits.max_body_bytes:
        raise ApiError(413, f"request body over {limits.max_body_bytes} bytes")
    if not body.strip():
        raise ApiError(400, "empty request body; send a JSON object")
    try:
        text = body.decode("utf-8-sig")  # a leading BOM is allowed (RFC 8259, section 8.1)
    except UnicodeDecodeError as err:
        raise ApiError(400, f"request body is not UTF-8 (bad byte at offset {err.start})") from err
    data = _load_json(text)
    if not isinstance(data, dict):
        raise ApiError(422, "request body must be a JSON object")
    try:
        return model.model_validate(data, context=limits)
    except ValidationError as err:
        raise ApiError(422, _summarise(err)) from err
