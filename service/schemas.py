"""Request schemas, generated from :class:`srca.SearchConfig` (one source of defaults).

The pydantic models check *types* (strictly: ``"4"`` is not an integer, ``1`` is not a boolean);
:class:`SearchConfig` itself checks *values*. Both kinds of failure become :class:`InputError`,
answered as 422 with a ``loc`` naming the field.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import re
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from srca.config import SearchConfig
from srca.solver import MAX_PROBLEM_CHARS, check_problem

_FIELD_RE = re.compile(r"^(?:SearchConfig\.)?(\w+): ")

# Every string field of a request is bounded (the body-size cap alone would let one field fill a
# megabyte that a job then keeps in Redis for days). A cue or delimiter is a few words; a prompt
# is a template name.
STRING_LIMITS = {"step_delimiter": 32, "checkpoint_cue": 256, "prompt": 64}
DEFAULT_STRING_LIMIT = 64  # method, scorer, aggregation, decision: names from a fixed set


class InputError(Exception):
    """A client's mistake; ``errors`` in FastAPI's ``detail`` format (``loc``, ``msg``, ``type``)."""

    public = True  # its message is meant for the client

    def __init__(self, errors: list[dict[str, Any]], status: int = 422) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))
        self.errors = errors
        self.status = status

    @classmethod
    def one(cls, field: str | None, msg: str, kind: str = "value_error", status: int = 422) -> "InputError":
        loc = ["body"] + ([field] if field else [])
        return cls([{"loc": loc, "msg": msg, "type": kind}], status)

    @classmethod
    def from_value_error(cls, e: Exception) -> "InputError":
        """``ValueError('SearchConfig.n: must be >= 1')`` -> loc ``["body", "n"]``."""
        msg = str(e)
        m = _FIELD_RE.match(msg)
        return cls.one(m.group(1) if m else None, msg)

    @classmethod
    def from_pydantic(cls, e: ValidationError, prefix: tuple[str, ...] = ("body",)) -> "InputError":
        return cls([{"loc": [*prefix, *e_["loc"]], "msg": e_["msg"], "type": e_["type"]} for e_ in e.errors()])


def config_field_definitions(skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """pydantic field definitions for every SearchConfig field, with the dataclass defaults."""
    hints = typing.get_type_hints(SearchConfig)
    defs: dict[str, Any] = {}
    for f in dataclasses.fields(SearchConfig):
        if f.name in skip:
            continue
        extra: dict[str, Any] = {}
        if hints[f.name] is str:
            extra["max_length"] = STRING_LIMITS.get(f.name, DEFAULT_STRING_LIMIT)
        defs[f.name] = (hints[f.name], Field(default=f.default, description=f"SearchConfig.{f.name}", **extra))
    return defs


# Request models: built on first use (not at import), once (functools.cache), strict, closed
STRICT = ConfigDict(extra="forbid", strict=True)


@functools.cache
def solve_request_model() -> type[BaseModel]:
    """``POST /solve`` and ``POST /jobs`` body: the problem, every SearchConfig field, ``stream``."""
    return create_model(
        "SolveRequest", __config__=STRICT,
        problem=(str, Field(description=f"the problem statement (1..{MAX_PROBLEM_CHARS} characters)")),
        stream=(bool, Field(default=False, description="answer with a text/event-stream of search events")),
        **config_field_definitions(),
    )


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """A route's ``openapi_extra``: its JSON body follows ``model`` (the routes read the body
    themselves, so FastAPI does not see it)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


def validate(model: type[BaseModel], body: Any) -> Any:
    """``body`` as an instance of the request model; raises :class:`InputError`."""
    if not isinstance(body, dict):
        raise InputError([{"loc": ["body"], "msg": "expected a JSON object", "type": "model_type"}])
    try:
        return model.model_validate(body)
    except ValidationError as e:
        raise InputError.from_pydantic(e) from None


@dataclasses.dataclass(frozen=True)
class SolveInput:
    problem: str
    config: SearchConfig
    stream: bool = False


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes) -> Any:
    """Strict JSON: no NaN/Infinity, no lone surrogates (they could not be sent back as UTF-8),
    bounded nesting."""
    def bad(msg: str) -> InputError:
        return InputError([{"loc": ["body"], "msg": f"invalid JSON: {msg}", "type": "json_invalid"}])

    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as e:  # JSONDecodeError is a ValueError
        raise bad(str(e)) from None
    except RecursionError:
        raise bad("nested too deeply") from None
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise bad("a string holds a lone UTF-16 surrogate") from None
    return data


def build_config(given: dict[str, Any], base: SearchConfig) -> SearchConfig:
    """The request's config over the service's: ``method`` may name a variant (``srca-lean``),
    whose fields the request's others override (:func:`srca.eval.variants.expand`)."""
    from srca.eval.variants import expand

    try:
        cfg = SearchConfig.from_dict(expand(given), base=base)
    except (ValueError, TypeError) as e:
        raise InputError.from_value_error(e) from None
    check_prompt(cfg.prompt)
    check_code_allowed(cfg.method)
    return cfg


def code_refused(method: str) -> bool:
    """Whether ``method`` runs model-written code (``pot``) where the operator has not allowed it
    (``SRCA_ALLOW_CODE=1``, :mod:`srca.execution`)."""
    from srca import execution
    from srca.methods import METHODS

    return METHODS[method].runs_code and not execution.allowed()


def check_code_allowed(method: str) -> None:
    """:func:`code_refused` as a 422 naming the field."""
    from srca import execution

    if code_refused(method):
        raise InputError.one("method", f"{method!r} runs the code the model writes; this service does not allow "
                             f"that (its operator can, with {execution.ALLOW_ENV}=1)")


def check_prompt(name: str) -> None:
    """A template name from the shipped set or the operator's folder, checked here so that an
    unknown one is a 422 now rather than a failed solve (or job) later."""
    from srca import prompts

    try:
        prompts.load(name)
    except ValueError as e:  # the message names no path: only the template names there are
        raise InputError.one("prompt", str(e)) from None


def checked_problem(problem: Any, field: str = "problem") -> str:
    try:
        return check_problem(problem)
    except (ValueError, TypeError) as e:
        msg = str(e).split(": ", 1)[-1]
        raise InputError.one(field, msg, "string_type" if isinstance(e, TypeError) else "value_error") from None


def parse_solve(body: Any, base: SearchConfig) -> SolveInput:
    """Validate a ``/solve`` body; raises :class:`InputError`."""
    given = validate(solve_request_model(), body).model_dump(exclude_unset=True)
    problem = checked_problem(given.pop("problem"))
    stream = given.pop("stream", False)
    return SolveInput(problem, build_config(given, base), stream)
