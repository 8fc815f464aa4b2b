"""Recipes: declarative files that name components, wire them together and say what to run."""

from .graph import Built, Plan, build, check, check_requirements
from .loader import FORMATS, load_recipe, recipe_from_dict
from .model import ComponentDecl, Recipe, RunSection
from .pick import pick, pick_optional, playing

__all__ = [
    "Recipe",
    "ComponentDecl",
    "RunSection",
    "load_recipe",
    "recipe_from_dict",
    "check",
    "check_requirements",
    "build",
    "Plan",
    "Built",
    "pick",
    "pick_optional",
    "playing",
    "FORMATS",
]
