"""Registries: the names that configs use for agents, environment kinds, models and problem families.

A registry is a mapping from a name to what the name builds. Looking up a name that is not there
raises :class:`UnknownNameError` with the closest registered names and how to add one from outside
the package (``--import MODULE``), so that a typo and a missing plugin both get one clear sentence.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """A name that no registry entry has; ``str()`` is the whole sentence (not ``KeyError``'s quoted repr)."""

    def __str__(self) -> str:
        return str(self.args[0])


def closest(name: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'a' or 'b'?"`` for the candidates close to ``name``, or ``""``."""
    matches = difflib.get_close_matches(str(name), sorted(candidates), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(map(repr, matches))}?" if matches else ""


def _article(noun: str) -> str:
    return "an" if noun[:1] in "aeiou" else "a"


class Registry(dict[str, T], Generic[T]):
    """Names of one kind of thing (``kind``, e.g. "agent") mapped to their entries.

    Args:
        kind: what an entry is, for messages ("problem family", "agent", ...).
        key: the config key that names an entry ("problem.name", "agent", ...).
    """

    def __init__(self, kind: str, key: str):
        super().__init__()
        self.kind, self.key = kind, key

    def register(self, name: str, entry: T) -> T:
        """Add (or replace) ``name``; returns ``entry`` so it can be used as a decorator's result."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"a {self.kind} is registered under a non-empty string, got {name!r}")
        self[name] = entry
        return entry

    def lookup(self, name: object, key: str | None = None) -> T:
        """The entry of ``name``, or :class:`UnknownNameError` naming the config key (``key``, default the
        registry's), the closest names and how to register one."""
        key = key or self.key
        if isinstance(name, str) and name in self:
            return self[name]
        if not isinstance(name, str):
            raise UnknownNameError(f"config key {key!r} must be a name, got a {type(name).__name__} ({name!r})")
        raise UnknownNameError(
            f"config key {key!r} is {name!r}, which is not a registered {self.kind}{closest(name, self)}"
            f" (registered: {', '.join(sorted(self))}; {_article(self.kind)} {self.kind} of your own registers when"
            " its module is imported with --import MODULE)"
        )
