"""The shape of a recipe, as pydantic models (the first validation pass)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints, field_validator

from ..specs import SEED_MAX

__all__ = ["Recipe", "ComponentDecl", "RunSection", "COMPONENT_NAME", "line_for"]

COMPONENT_NAME = r"^[A-Za-z_][A-Za-z0-9_-]*$"
ComponentName = Annotated[str, StringConstraints(pattern=COMPONENT_NAME, max_length=100)]

RECIPE_NAME_MAX = 100
"""Longest recipe name in UTF-8 bytes: it names the run folder, and file names stop at 255."""


def line_for(lines: dict[str, int], path: str) -> int | None:
    """The source line of ``path`` or of its nearest enclosing key that has one."""
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        if cut <= 0:
            return None
        path = path[:cut]
    return None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ComponentDecl(_Strict):
    """One named component: which registered component to ``use`` and its ``params``."""

    use: Annotated[str, StringConstraints(min_length=1)] = Field(
        description="Registered name of the component, e.g. 'popularity.v1' (see `recai plugins`)."
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Parameters, checked against the component's params model. A parameter that "
        "takes another component is given that component's name in this recipe.",
    )
    description: str | None = Field(
        default=None, description="Free text for readers of the recipe."
    )


class RunSection(_Strict):
    """What `recai run` does."""

    stages: list[ComponentName] | None = Field(
        default=None,
        description="Evaluator components to run, in order. Default: every evaluator, in file order.",
    )
    seed: int = Field(
        default=0,
        ge=0,
        le=SEED_MAX,
        description="Seed passed to every stage through the run context: 0 .. 2**32 - 1 "
        "(what numpy and torch accept).",
    )


class Recipe(_Strict):
    """A recipe: named components wired together, and what to run."""

    name: str | None = Field(
        default=None,
        description="Name of the recipe; names the default output folder (runs/<name>), so it is "
        f"one folder name: 1 to {RECIPE_NAME_MAX} bytes, no '/', '\\\\' or control "
        "characters, not starting with '.'.",
    )
    description: str | None = None
    requires: list[str] = Field(
        default_factory=list,
        description="Distributions this recipe needs, with optional versions: ['recai-classic>=0.1'].",
    )
    components: dict[ComponentName, ComponentDecl] = Field(
        default_factory=dict, description="The components, by the name the recipe gives them."
    )
    run: RunSection = Field(default_factory=RunSection)

    @field_validator("name")
    @classmethod
    def _folder_name(cls, name: str | None) -> str | None:
        if name is None:
            return None
        if not name.strip():
            raise ValueError("the name is empty; give a name, or leave the key out")
        size = len(name.encode("utf-8", "surrogatepass"))
        if size > RECIPE_NAME_MAX:
            raise ValueError(
                f"the name is {size} bytes long (UTF-8); it names the run folder, so keep it to "
                f"{RECIPE_NAME_MAX}"
            )
        if "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(
                "the name names the run folder (runs/<name>), so it cannot contain '/' or '\\' "
                "or start with '.'"
            )
        if any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise ValueError("the name contains a control character (a newline, tab, NUL, ...)")
        return name

    _source: str = PrivateAttr(default="<recipe>")
    _secret_paths: frozenset[str] = PrivateAttr(default=frozenset())
    _secret_values: frozenset[str] = PrivateAttr(default=frozenset())
    _lines: dict[str, int] = PrivateAttr(default_factory=dict)

    @property
    def source(self) -> str:
        """The file the recipe came from (``<recipe>`` when built from a dict)."""
        return self._source

    @property
    def secret_paths(self) -> frozenset[str]:
        """Key paths whose values came from the environment (never echoed in errors)."""
        return self._secret_paths

    @property
    def secret_values(self) -> frozenset[str]:
        """The values taken from the environment (the loader's exact record; see recai.secrets)."""
        return self._secret_values

    def line_of(self, path: str) -> int | None:
        """Best-known source line for a key path, or None."""
        return line_for(self._lines, path)

    def stage_names(self) -> list[str]:
        return list(self.run.stages) if self.run.stages is not None else []
