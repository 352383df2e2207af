"""Typed pipeline configuration (being split into schema, load and rules modules)."""

from compress.config.schema import *  # noqa: F401,F403
