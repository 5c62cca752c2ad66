"""Recipes: compose data, teacher, student, trainer and evaluation into whole jobs."""
