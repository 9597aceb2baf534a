"""The base class every stage family derives from, and the errors for bad trajectories.

A *family* is the set of rules for one kind of task: its ordered stages, the named boolean
sub-conditions (``is_grasped``, ``is_lifted``, ``in_goal`` ...), the event that ends each stage,
the per-stage potential and the per-stage cost. Rules are written over a *trajectory*: a mapping of
:mod:`stare_robot.keys` names to arrays with a leading time axis ``(T, ...)``; the past is reached
only through a history object (see :mod:`stare_robot.stages.history`), so the same code runs
offline (vectorised) and online (one step at a time).

Potentials are staged like ManiSkill's dense rewards: each stage's term is normalised to [0, 1]
by its declared maximum, and the calculator gates it on the completed earlier stages.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from stare_robot import keys

if TYPE_CHECKING:
    from stare_robot.stages.segments import StageSegments

Trajectory = Mapping[str, np.ndarray]
Conditions = dict[str, np.ndarray]

# Trailing shape each field must have (after the time axis); None = any.
FIELD_SHAPES: dict[str, tuple[int, ...] | None] = {
    keys.OBS_EE_POSE: (7,),
    keys.SIM_OBJ_POSE: (7,),
    keys.SIM_TARGET_POSE: (7,),
    keys.SIM_GOAL_POS: (3,),
    keys.SIM_IS_GRASPED: (),
    keys.SIM_CONTACT: (),
    keys.SIM_SUCCESS: (),
    keys.OBS_JOINT_POS: None,
    keys.OBS_GRIPPER: None,  # (T, 1) or (T,)
    keys.ACTION: None,
}


class TrajectoryError(ValueError):
    """A trajectory cannot be used by a family (missing field, bad shape)."""


@dataclasses.dataclass
class FamilyConfig:
    """Thresholds shared by the object families (metres, radians, steps)."""


class StageFamily(abc.ABC):
    """Rules for one task family. Subclasses set the class attributes and implement the hooks."""

    name: ClassVar[str]
    stage_names: ClassVar[tuple[str, ...]]
    # Each entry is a key, or a tuple of alternative keys of which one must be present.
    required_fields: ClassVar[tuple[str | tuple[str, ...], ...]]
    optional_fields: ClassVar[tuple[str, ...]] = ()
    config_class: ClassVar[type] = FamilyConfig

    def __init__(self, config: Any = None, **overrides: Any):
        config = config if config is not None else self.config_class()
        unknown = set(overrides) - {f.name for f in dataclasses.fields(config)}
        if unknown:
            valid = ", ".join(f.name for f in dataclasses.fields(config))
            raise TypeError(f"{self.name}: unknown setting(s) {sorted(unknown)}; valid: {valid}")
        self.config = dataclasses.replace(config, **overrides)

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any], **overrides: Any) -> StageFamily:
        """Build with any config field found among an episode's attrs (e.g. ``obj_half_size``)."""
        names = {f.name for f in dataclasses.fields(cls.config_class)}
        found = {k: attrs[k] for k in names if k in attrs and attrs[k] is not None}
        return cls(**{**found, **overrides})

    @property
    def num_stages(self) -> int:
        return len(self.stage_names)

    # --- input checking ---

    def check(self, traj: Trajectory) -> int:
        """Raise :class:`TrajectoryError` naming the field and the family if ``traj`` lacks what
        the rules need or has a wrong shape; return the number of steps T."""
        lengths: dict[str, int] = {}
        for need in self.required_fields:
            options = need if isinstance(need, tuple) else (need,)
            present = [k for k in options if k in traj]
            if not present:
                wanted = " or ".join(f"'{k}'" for k in options)
                raise TrajectoryError(
                    f"stage family '{self.name}' needs field {wanted}, which the trajectory lacks "
                    f"(it has: {sorted(traj)})"
                )
            for key in present:
                lengths[key] = self._check_shape(key, np.asarray(traj[key]))
        for key in self.optional_fields:
            if key in traj:
                lengths[key] = self._check_shape(key, np.asarray(traj[key]))
        if len(set(lengths.values())) > 1:
            raise TrajectoryError(
                f"stage family '{self.name}': fields disagree on the number of steps: {lengths}"
            )
        return next(iter(lengths.values()))

    def _check_shape(self, key: str, arr: np.ndarray) -> int:
        want = FIELD_SHAPES.get(key)
        if arr.ndim == 0 or (want is not None and arr.shape[1:] != want):
            shape = "(T,)" if want == () else f"(T, {', '.join(map(str, want or ('...',)))})"
            raise TrajectoryError(
                f"stage family '{self.name}': field '{key}' must have shape {shape}, "
                f"got {arr.shape}"
            )
        return int(arr.shape[0])

    # --- the rules (hooks) ---

    @abc.abstractmethod
    def conditions(self, traj: Trajectory, history: Any) -> Conditions:
        """Named per-step quantities (T,): boolean sub-conditions and the distances they use."""

    @abc.abstractmethod
    def exit_events(self, cond: Conditions) -> list[np.ndarray]:
        """K-1 boolean (T,) arrays; entry k ends stage k (and so starts stage k+1)."""

    @abc.abstractmethod
    def stage_potentials(self, cond: Conditions) -> list[np.ndarray]:
        """K float (T,) arrays in [0, 1]: progress within each stage, as if the step were in it."""

    @abc.abstractmethod
    def success(self, cond: Conditions) -> np.ndarray:
        """(T,) bool: the last stage is complete (the task's own success rule, geometrically)."""

    @abc.abstractmethod
    def stage_costs(self, cond: Conditions, seg: StageSegments) -> np.ndarray:
        """(E, K) cost of each stage of each episode (0 = perfect); NaN where never entered."""
