"""Stage families by name: ``register`` (a class decorator) and ``get_family``.

Registration is explicit: ``stare_robot/stages/__init__.py`` imports every family module, and a
test checks the registry lists them all.
"""

from __future__ import annotations

from typing import Any

from stare_robot.names import did_you_mean
from stare_robot.stages.family import StageFamily

_FAMILIES: dict[str, type[StageFamily]] = {}


class UnknownFamilyError(KeyError):
    """Asked for a family name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def register(cls: type[StageFamily]) -> type[StageFamily]:
    if cls.name in _FAMILIES and _FAMILIES[cls.name] is not cls:
        raise ValueError(f"stage family '{cls.name}' is registered twice")
    _FAMILIES[cls.name] = cls
    return cls


def family_names() -> list[str]:
    return sorted(_FAMILIES)


def family_class(name: str) -> type[StageFamily]:
    if name not in _FAMILIES:
        hint = did_you_mean(name, _FAMILIES)
        raise UnknownFamilyError(
            f"unknown stage family '{name}'.{hint} Valid families: {', '.join(family_names())}"
        )
    return _FAMILIES[name]


def get_family(name: str | StageFamily, **config: Any) -> StageFamily:
    """A family instance by name (thresholds overridable by keyword); instances pass through."""
    if isinstance(name, StageFamily):
        return name
    return family_class(name)(**config)
