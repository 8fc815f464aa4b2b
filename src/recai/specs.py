"""Component specs: what a plugin's hook yields for each component it provides.

A spec carries a **registered name** (lowercase, versioned: ``popularity.v1``), a **factory** (a
callable, or a lazy ``"module:attribute"`` string so that listing plugins imports nothing heavy), a
**params model** (a pydantic model with ``extra="forbid"``, or a lazy ``"module:Model"`` string;
derived from the factory's signature when omitted) and a one-line **summary**.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
import math
import re
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
)
from pydantic_core import PydanticUndefined

from .errors import InvalidSpecError, ParamsError, Problem

__all__ = [
    "ComponentSpec",
    "Params",
    "Seed",
    "SEED_MAX",
    "INT_MIN",
    "INT_MAX",
    "number_problem",
    "Configurable",
    "NAME_PATTERN",
    "params_from_signature",
    "format_validation_error",
    "is_secret_path",
    "unknown_key_hints",
    "import_reference",
    "neutral",
    "neutral_fields",
]

_LAZY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]*(?:\.[a-z0-9_-]+)*\.v[0-9]+$")
"""Registered names: lowercase words separated by dots, ending in a version (``sasrec.v1``)."""


INT_MIN, INT_MAX = -(2**63), 2**63 - 1
"""The integers a param may hold unless its field says otherwise: what fits a 64-bit integer,
so numpy, torch and SQLite take it without overflow."""

NEUTRAL = "recai_neutral"
"""The ``json_schema_extra`` key :func:`neutral` sets on a field."""


def neutral(default: Any = PydanticUndefined, **kwargs: Any) -> Any:
    """``Field(...)`` for a param that changes how a component runs, not what it answers:
    threads, a cache of its own, a memory bound. :func:`recai.roles.describe_component` leaves
    such params out, so changing one keeps every cache key and saved fit that names the
    component (answers may differ in floating-point rounding only). Use it as a default or in
    ``Annotated``: ``threads: Annotated[int | None, neutral(ge=1)] = None``.

    >>> from typing import Annotated
    >>> class P(Params):
    ...     size: int = 3
    ...     threads: Annotated[int, neutral(ge=1)] = 1
    >>> sorted(neutral_fields(P))
    ['threads']
    """
    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    extra[NEUTRAL] = True
    return Field(default, json_schema_extra=extra, **kwargs)


def neutral_fields(model: type[BaseModel]) -> frozenset[str]:
    """The fields of ``model`` declared with :func:`neutral`."""
    return frozenset(
        name
        for name, info in model.model_fields.items()
        if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get(NEUTRAL)
    )


SEED_MAX = 2**32 - 1
"""The largest seed: numpy's ``RandomState`` (and so much of the ecosystem) takes 0 .. 2**32 - 1."""

Seed = Annotated[
    int, Field(ge=0, le=SEED_MAX, description="random seed, 0 .. 4294967295 (2**32 - 1)")
]
"""A seed field: ``seed: recai.specs.Seed = 0``. Fields named ``seed`` or ``*_seed`` of a
:class:`Params` model get the same bounds without saying so."""


def _is_seed_field(name: str | None) -> bool:
    return bool(name) and (name == "seed" or str(name).endswith("_seed"))


def number_problem(value: Any, *, seed: bool = False) -> str | None:
    """Why a number cannot be a param (non-finite float, integer beyond 64 bits, a seed out of
    0 .. 2**32 - 1), or None. Booleans and other values are not numbers here.

    >>> number_problem(float("inf")), number_problem(2**70) is not None, number_problem(-1, seed=True)
    ('not a finite number (got inf); give a finite value', True, 'a seed must be 0 .. 4294967295 (2**32 - 1); got -1')
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"not a finite number (got {value!r}); give a finite value"
    if isinstance(value, int):
        if seed and not 0 <= value <= SEED_MAX:
            return f"a seed must be 0 .. {SEED_MAX} (2**32 - 1); got {_short_int(value)}"
        if not INT_MIN <= value <= INT_MAX:
            return (
                f"{_short_int(value)} is too large: integers must fit in 64 bits "
                f"({INT_MIN} .. {INT_MAX})"
            )
    return None


def _short_int(value: int) -> str:
    digits = len(str(abs(value))) if abs(value) < 10**4000 else None
    if digits is not None and digits <= 30:
        return str(value)
    return f"an integer of {digits or 'over 4000'} digits"


def _number_problems(
    value: Any, where: str, seed: bool, depth: int = 0
) -> Iterator[tuple[str, str]]:
    """``(sub-path, why)`` for each unusable number inside ``value`` (lists, tuples, dicts,
    models); the sub-path is ``""`` for ``value`` itself, else like ``"[3]"`` or ``".key"``."""
    problem = number_problem(value, seed=seed)
    if problem is not None:
        yield where, problem
        return
    if depth > 64:  # values nested this deep are refused by the recipe loader already
        return
    if isinstance(value, dict):
        items: Iterable[tuple[str, Any]] = ((f"{where}.{k}", v) for k, v in value.items())
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(value))
    elif isinstance(value, BaseModel) and not isinstance(value, Params):  # Params check their own
        items = ((f"{where}.{k}", v) for k, v in value.__dict__.items())
    else:
        return
    for sub, v in items:
        yield from _number_problems(v, sub, seed, depth + 1)


class Params(BaseModel):
    """Base class for explicit params models: unknown keys are errors, arbitrary types allowed.

    Models inherit: settings several components share live in one base model, and each
    component's model adds its own. A class configured by such a model takes it, or its fields
    as keywords, through :meth:`from_call` (see :class:`Configurable`).

    Numbers are checked at the root, for every field of every model, so that what a recipe
    check accepts a run can use: floats must be finite (no ``inf`` or ``nan``, also inside
    lists and tables), integers must fit in 64 bits, and fields named ``seed`` or ``*_seed``
    take 0 .. 2**32 - 1 (what numpy and torch accept). Params that index or allocate give
    their own bounds (``Field(ge=1, le=...)``).
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _usable_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name or ""
        found = [
            f"at {name}{sub}: {why}" if sub else why
            for sub, why in _number_problems(value, "", _is_seed_field(name))
        ]
        if found:
            raise ValueError("; ".join(found[:3]) + ("; ..." if len(found) > 3 else ""))
        return value

    @classmethod
    def from_call(
        cls: type[_P],
        label: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        positional: Sequence[str] = (),
    ) -> _P:
        """This model validated from a call's arguments: a ready instance alone, or values for
        the fields ``positional`` by position and any field by keyword.

        Raises :class:`~recai.errors.ParamsError` with the messages of ``recai.create`` (every
        problem, "did you mean" for a misspelt key), or ``TypeError`` for misused positions.

        >>> from pydantic import Field
        >>> class Toy(Params):
        ...     window: int = Field(3, ge=1)
        >>> Toy.from_call("Toy", (), {"window": 5}).window
        5
        >>> Toy.from_call("Toy", (), {"windw": 5})
        Traceback (most recent call last):
        ...
        recai.errors.ParamsError: invalid parameters for Toy:
          - windw: unknown key (did you mean 'window'? allowed keys: window)
        """
        if len(args) == 1 and not kwargs and isinstance(args[0], cls):
            return args[0]
        if len(args) > len(positional):
            takes = ", ".join(positional) or "nothing"
            raise TypeError(
                f"{label}() takes {len(positional)} positional argument(s) ({takes}) but "
                f"{len(args)} were given; pass the others by keyword"
            )
        given = dict(zip(positional, args, strict=False))
        twice = sorted(given.keys() & kwargs.keys())
        if twice:
            raise TypeError(f"{label}() got multiple values for argument {twice[0]!r}")
        try:
            return cls.model_validate({**given, **kwargs})
        except ValidationError as e:
            problems = unknown_key_hints(format_validation_error(e), "", cls)
            raise ParamsError(label, problems) from None

    @classmethod
    def signature(cls, positional: Sequence[str] = ()) -> inspect.Signature:
        """The call signature of a class built from this model (for ``help()`` and editors): the
        fields ``positional`` first, then every other field keyword-only, with defaults."""
        fields = cls.model_fields

        def param(name: str, kind: inspect._ParameterKind) -> inspect.Parameter:
            f = fields[name]
            default = inspect.Parameter.empty if f.is_required() else f.default
            return inspect.Parameter(name, kind, default=default, annotation=f.annotation)

        first = [param(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in positional]
        rest = [param(n, inspect.Parameter.KEYWORD_ONLY) for n in fields if n not in positional]
        return inspect.Signature([*first, *rest])


_P = TypeVar("_P", bound=Params)


_ParamsModel = Params  # for annotations inside Configurable, whose own `Params` names its model


class Configurable:
    """Mixin for a component class configured by a params model (``Params``, a
    :class:`recai.Params` subclass): ``Cls(**fields)``, ``Cls(*positional, **fields)`` or
    ``Cls(params_instance)``; the validated model is ``self.params``, and ``help(Cls)`` shows
    every field with its default. A subclass names its own model and may add to ``__init__``
    (call ``super().__init__(*args, **kwargs)`` first).

    >>> from pydantic import Field
    >>> class WindowParams(Params):
    ...     window: int = Field(3, ge=1, description="items of history")
    >>> class Windowed(Configurable):
    ...     Params = WindowParams
    >>> Windowed(window=5).params.window
    5
    >>> str(inspect.signature(Windowed))
    '(*, window: int = 3)'
    """

    #: The params model; subclasses name their own.
    Params: ClassVar[type[Params]] = Params
    #: Fields that may also be given by position, in this order.
    positional: ClassVar[tuple[str, ...]] = ()

    params: _ParamsModel

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__signature__ = cls.Params.signature(cls.positional)  # type: ignore[attr-defined]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.params = self.Params.from_call(type(self).__name__, args, kwargs, self.positional)


@dataclass(frozen=True, eq=False)
class ComponentSpec:
    """One component a plugin provides.

    ``factory`` is called with the validated params as keyword arguments and returns an instance of
    the role class of the hook that yielded the spec.
    """

    name: str
    factory: Callable[..., Any] | str
    summary: str
    params: type[BaseModel] | str | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def problems(self) -> list[str]:
        """What is wrong with this spec (empty when it is well formed). Imports nothing."""
        out: list[str] = []
        if not isinstance(self.name, str) or not NAME_PATTERN.match(self.name):
            hint = "e.g. 'popularity.v1'"
            if isinstance(self.name, str) and NAME_PATTERN.match(self.name.lower() + ".v1"):
                hint = f"did you mean {self.name.lower() + '.v1'!r}?"
            out.append(
                f"name {self.name!r} is not a registered name: use lowercase words (letters, digits, "
                f"'-', '_') separated by dots and end with a version; {hint}"
            )
        out += factory_and_summary_problems(self.factory, self.summary, "module:attribute")
        if isinstance(self.params, str):
            if not _LAZY.match(self.params):
                out.append(
                    f"params {self.params!r} must be a model class or a 'module:Model' string"
                )
        elif self.params is not None:
            if not (isinstance(self.params, type) and issubclass(self.params, BaseModel)):
                out.append(f"params must be a pydantic model class, got {self.params!r}")
            elif self.params.model_config.get("extra") != "forbid":
                out.append(
                    f"params model {self.params.__name__} must forbid unknown keys: "
                    "set model_config = ConfigDict(extra='forbid') or subclass recai.Params"
                )
        return out

    # -- lazy parts -------------------------------------------------------------------------------
    def load_factory(self) -> Callable[..., Any]:
        """The factory callable, importing its module on first use for ``"module:attr"`` strings."""
        if "factory" not in self._cache:
            self._cache["factory"] = self._load(self.factory, "factory")
        return self._cache["factory"]  # type: ignore[no-any-return]

    def params_model(self) -> type[BaseModel]:
        """The params model: the explicit one (imported on first use for ``"module:Model"``),
        the ``Params`` of a :class:`Configurable` factory, or one derived from the factory's
        signature."""
        if "params" not in self._cache:
            factory = self.load_factory() if self.params is None else None
            if isinstance(factory, type) and issubclass(factory, Configurable):
                model: type[BaseModel] = factory.Params  # a Configurable names its model
            elif self.params is None:
                model = params_from_signature(self.load_factory(), self.name)
            else:
                model = self._load(self.params, "params model")
            problems = ComponentSpec(self.name, self.factory, self.summary, model).problems()
            if problems:
                raise InvalidSpecError(f"component {self.name}: " + "; ".join(problems))
            self._cache["params"] = model
        return self._cache["params"]  # type: ignore[no-any-return]

    def _load(self, ref: Any, what: str) -> Any:
        if not isinstance(ref, str):
            return ref
        try:
            obj = import_reference(ref)
        except Exception as e:  # noqa: BLE001 - reported with the component name
            raise InvalidSpecError(
                f"component {self.name}: cannot import its {what} {ref!r}: {type(e).__name__}: {e}"
            ) from e
        return obj

    def validate_params(
        self, params: dict[str, Any], *, context: dict[str, Any] | None = None
    ) -> BaseModel:
        """Validate ``params``; raises :class:`ParamsError` listing every problem."""
        try:
            return self.params_model().model_validate(params, context=context)
        except ValidationError as e:
            problems = unknown_key_hints(format_validation_error(e), "", self.params_model())
            raise ParamsError(self.name, problems) from None

    def build(self, params: dict[str, Any] | BaseModel | None = None) -> Any:
        """Validate ``params`` and call the factory with them."""
        model = self.params_model()
        if not isinstance(params, model):
            params = self.validate_params(dict(params or {}))
        kwargs = {name: getattr(params, name) for name in type(params).model_fields}
        obj = self.load_factory()(**kwargs)
        with contextlib.suppress(AttributeError, TypeError):  # objects without a __dict__
            dump = params.model_dump(
                mode="json", fallback=repr, exclude=set(neutral_fields(type(params)))
            )
            obj._recai_built_as = (self.name, dump)
        return obj


def factory_and_summary_problems(factory: Any, summary: Any, lazy_form: str) -> list[str]:
    """What is wrong with a spec's factory (a callable or a lazy ``lazy_form`` string) and its
    one-line summary; shared by component and command specs."""
    out: list[str] = []
    if isinstance(factory, str):
        if not _LAZY.match(factory):
            out.append(f"factory {factory!r} must be a callable or a '{lazy_form}' string")
    elif not callable(factory):
        out.append(f"factory {factory!r} is not callable")
    if not isinstance(summary, str) or not summary.strip():
        out.append("summary must be a non-empty one-line string")
    elif "\n" in summary.strip():
        out.append("summary must fit on one line")
    return out


def import_reference(ref: str) -> Any:
    """The object a lazy ``"package.module:attr.sub"`` reference names, importing its module.

    >>> import_reference("recai.specs:Params.from_call").__name__
    'from_call'
    """
    module_name, _, attr = ref.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def params_from_signature(factory: Callable[..., Any], name: str = "") -> type[BaseModel]:
    """A params model (``extra="forbid"``) built from the keyword parameters of ``factory``.

    Every parameter needs a type annotation; ``*args`` and ``**kwargs`` are not allowed, because a
    recipe could not be checked against them.
    """
    target = factory.__init__ if inspect.isclass(factory) else factory
    label = name or getattr(factory, "__qualname__", repr(factory))
    model_name = "".join(w.capitalize() for w in re.split(r"[^a-zA-Z0-9]+", label) if w) + "Params"
    if target is object.__init__:  # a class without its own __init__ takes no params
        return create_model(model_name, __base__=Params)
    try:
        sig = inspect.signature(target)
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception as e:  # noqa: BLE001
        raise InvalidSpecError(
            f"component {label}: cannot read the factory's signature: {e}"
        ) from e
    fields: dict[str, Any] = {}
    params = list(sig.parameters.values())
    if inspect.isclass(factory) and params:
        params = params[1:]  # self
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise InvalidSpecError(
                f"component {label}: the factory takes *{p.name}; give the spec an explicit params model"
            )
        if p.kind is p.POSITIONAL_ONLY:
            raise InvalidSpecError(f"component {label}: parameter {p.name!r} is positional-only")
        if p.name not in hints:
            raise InvalidSpecError(
                f"component {label}: parameter {p.name!r} of the factory has no type annotation; "
                f"annotate it (e.g. `{p.name}: str = ...`) or give the spec an explicit params model"
            )
        default = ... if p.default is p.empty else p.default
        fields[p.name] = (hints[p.name], default)
    return create_model(model_name, __base__=Params, **fields)


def _model_at(model: Any, parts: list[str]) -> Any:
    """The pydantic model reached from ``model`` through the field names ``parts`` (or None)."""
    for part in parts:
        field = getattr(model, "model_fields", {}).get(re.sub(r"\[\d+\]$", "", part))
        if field is None:
            return None
        candidates = [field.annotation, *typing.get_args(field.annotation)]
        model = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
        if model is None:
            return None
    return model


def unknown_key_hints(problems: list[Problem], prefix: str, model: type) -> list[Problem]:
    """Add "did you mean" and the allowed keys to the "unknown key" problems of params ``model``
    (whose key paths start with ``prefix``; ``""`` for params given directly)."""
    out = []
    for p in problems:
        rest = p.where[len(prefix) + 1 :] if prefix else p.where
        if p.message == "unknown key" and (not prefix or p.where.startswith(prefix + ".")):
            *parents, key = rest.split(".")
            owner = _model_at(model, parents)
            if owner is not None:
                fields = list(owner.model_fields)
                close = difflib.get_close_matches(key, fields, n=1, cutoff=0.6)
                none = "(none: this component takes no parameters)" if not parents else "(none)"
                allowed = ", ".join(fields) if fields else none
                hint = f"did you mean {close[0]!r}? " if close else ""
                p = Problem(p.where, f"unknown key ({hint}allowed keys: {allowed})")
        out.append(p)
    return out


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":  # pydantic's marker for an invalid dict key; the message says so
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def _kind(value: Any) -> str:
    kinds = {
        list: "a list",
        tuple: "a list",
        str: "a string",
        bool: "true/false",
        int: "a number",
        float: "a number",
    }
    return "nothing" if value is None else kinds.get(type(value), f"a {type(value).__name__}")


def is_secret_path(where: str, redact: frozenset[str]) -> bool:
    """Whether the value at key path ``where`` is, or contains, a value from the environment."""
    if not redact:
        return False
    if where in redact:
        return True
    return (
        any(s.startswith(where + ".") or s.startswith(where + "[") for s in redact)
        if where
        else True
    )


def format_validation_error(
    error: ValidationError, prefix: str = "", redact: frozenset[str] = frozenset()
) -> list[Problem]:
    """Turn a pydantic error into :class:`Problem` lines with dotted key paths.

    Values at paths in ``redact`` (secrets from the environment) are never echoed.
    """
    problems: list[Problem] = []
    for err in error.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        path = _loc(loc)
        where = f"{prefix}.{path}" if prefix and path else (prefix or path)
        kind = err["type"]
        msg = err["msg"]
        if kind == "extra_forbidden":
            msg = "unknown key"
        elif kind == "missing":
            msg = "required key is missing"
        elif kind == "value_error":
            msg = msg.removeprefix("Value error, ")
            value = err.get("input")
            if (
                isinstance(value, str) and value and is_secret_path(where, redact)
            ):  # a validator's echo
                msg = msg.replace(value, "<value from the environment>")
        elif kind in ("dict_type", "model_type"):  # the type of a value is never a secret
            msg = f"expected a table/mapping, got {_kind(err.get('input'))}"
        elif "input" in err and is_secret_path(where, redact):
            msg = f"{msg} (the value comes from the environment and is not shown)"
        elif "input" in err:
            value = err["input"]
            shown = repr(value)
            if len(shown) > 60:
                shown = shown[:57] + "..."
            msg = f"{msg} (got {shown})"
        if err["loc"] and err["loc"][-1] == "[key]":
            msg = "invalid key: " + msg
        problems.append(Problem(where, msg))
    return _merge_branches(problems)


_NEEDS = re.compile(r"^(?P<head>.*), but this parameter needs (?P<role>.+)$", re.S)


def _merge_branches(problems: list[Problem]) -> list[Problem]:
    """One problem per key path for values checked against each member of a union (``Ranker |
    Retriever``): identical messages once, "needs a ranker" + "needs a retriever" as one line."""
    out: list[Problem] = []
    at: dict[str, list[int]] = {}  # key path -> indices in out (linear for 100,000 problems)
    for p in problems:
        same = at.setdefault(p.where, [])
        if any(out[i].message == p.message for i in same):
            continue
        new = _NEEDS.match(p.message)
        merged = False
        for i in same:
            old = _NEEDS.match(out[i].message)
            if new and old and new["head"] == old["head"]:
                out[i] = Problem(
                    p.where,
                    f"{old['head']}, but this parameter needs {old['role']} or {new['role']}",
                )
                merged = True
                break
        if not merged:
            same.append(len(out))
            out.append(p)
    return out
