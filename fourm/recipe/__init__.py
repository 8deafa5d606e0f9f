"""The recipe of issue 18: one path from a folder of captioned images to a working bundle.

    from fourm.recipe import RecipeConfig, run_recipe
    result = run_recipe(RecipeConfig(root="my_images", out="runs/mine", minutes=60))

Stages (``fourm.recipe.stages``): import -> image tokenizers -> text vocabulary -> tokenize ->
train -> bundle -> report, each skipped when its output exists and its recorded inputs match.
"""

from fourm.recipe.config import STAGE_SHARES, RecipeConfig, plan_minutes
from fourm.recipe.stages import run_recipe

__all__ = ["STAGE_SHARES", "RecipeConfig", "plan_minutes", "run_recipe"]
