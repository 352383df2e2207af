"""The one domain exception. It is raised anywhere and caught only by the CLI."""

from __future__ import annotations


class CompressError(Exception):
    """A problem the user can fix. Each item of ``problems`` is printed as one line.

    Example: ``CompressError("distill.temperature: must be > 0, got -1")``.
    """

    def __init__(self, *problems: str):
        self.problems = [p for p in problems if p]
        super().__init__("\n".join(self.problems))


class ConfigError(CompressError):
    """The pipeline file or an override is wrong; nothing has been run or written."""
