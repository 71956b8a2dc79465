"""One registry style for everything the configuration builds by name.

A :class:`Registry` maps names to factories (classes or functions). Config groups name an entry and
give its options as keyword arguments: ``{"name": "hevc", "subsampling": "420"}`` becomes
``CODECS.create("hevc", subsampling="420")``. Unknown names and options the factory does not take are
refused with one line that lists what is valid, before anything is built.

Example:
    >>> SHAPES = Registry("shape")
    >>> @SHAPES.register("square")
    ... def square(side: int = 1) -> int:
    ...     return side * side
    >>> SHAPES.create("square", side=3)
    9
    >>> SHAPES.create("circle")
    Traceback (most recent call last):
    ...
    sandwich.errors.InputError: unknown shape 'circle'; valid names: square
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from sandwich.errors import InputError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named factories of one kind (``kind`` names it in errors: ``"codec"``, ``"bypass"``, ...)."""

    def __init__(self, kind: str, entries: Mapping[str, Callable[..., T]] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., T]] = dict(entries or {})

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: add ``factory`` under ``name`` (a name may be registered once)."""

        def add(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._entries[name] = factory
            return factory

        return add

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered as ``name``; InputError naming the valid ones otherwise."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise InputError(f"unknown {self.kind} {name!r}; valid names: {', '.join(self._entries)}") from None

    def create(self, name: str, *args: Any, **options: Any) -> T:
        """Build ``name`` with ``options`` (positional ``args`` are the caller's, e.g. channel counts).

        Raises:
            InputError: an unknown name, or an option the factory does not take.
        """
        factory = self.get(name)
        params = inspect.signature(factory).parameters.values()
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            accepted = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)][len(args) :]
            unknown = sorted(set(options) - set(accepted))
            if unknown:
                takes = ", ".join(accepted) if accepted else "no options"
                raise InputError(f"{self.kind} {name}: unknown option(s) {', '.join(unknown)}; it takes {takes}")
        return factory(*args, **options)

    def from_config(self, config: Mapping[str, Any], *args: Any) -> T:
        """Build from a config mapping ``{"name": ..., **options}``."""
        options = dict(config)
        if "name" not in options:
            raise InputError(f"{self.kind} config {options} has no 'name'; valid names: {', '.join(self._entries)}")
        return self.create(options.pop("name"), *args, **options)
