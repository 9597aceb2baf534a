"""Annotate one episode with its stages and gripper keyframes.

Used by ``stare-robot stages annotate`` and by the ROS episode recorder: given the episode's
arrays (or a store and an episode id) it computes the per-step ``stage`` array, the keyframe step
indices and the stage names, and (for a store) writes them into the episode. Writing the same
annotation again changes nothing, so annotating is idempotent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from stare_robot import keys
from stare_robot.stages.family import StageFamily, Trajectory
from stare_robot.stages.gripper import Gripper, keyframes_from_conditions
from stare_robot.stages.history import EpisodeBatch
from stare_robot.stages.registry import family_class
from stare_robot.stages.separator import run_separator

GRIPPER_SIGNALS = (keys.OBS_GRIPPER, keys.ACTION)


@dataclass
class EpisodeAnnotation:
    family: str
    stage: np.ndarray  # (T,) int16
    stage_names: list[str]
    keyframes: list[int]  # gripper-transition steps ([] without a gripper signal)

    def store_arrays(self) -> dict[str, np.ndarray]:
        return {keys.STAGE: self.stage}

    def store_attrs(self) -> dict[str, Any]:
        return {
            keys.ATTR_STAGE_FAMILY: self.family,
            keys.ATTR_STAGE_NAMES: list(self.stage_names),
            keys.ATTR_KEYFRAMES: [int(k) for k in self.keyframes],
        }


def resolve_family(
    family: str | StageFamily | None, attrs: Mapping[str, Any] | None = None, **config: Any
) -> StageFamily:
    """The family ``family`` names, else the one in the episode's ``stage_family`` attr, configured
    with any matching episode attrs (e.g. ``obj_half_size``) and ``config`` overrides.

    A family given explicitly wins over the attr: an operator who passes ``--family`` means it
    (e.g. re-labelling a recording with another family), and ignoring it silently left episodes
    labelled with a family nobody asked for."""
    attrs = dict(attrs or {})
    if isinstance(family, StageFamily):
        return family
    name = family or attrs.get(keys.ATTR_STAGE_FAMILY)
    if not name:
        raise ValueError(
            f"the episode has no '{keys.ATTR_STAGE_FAMILY}' attr; pass a family "
            "(e.g. --family push_pull)"
        )
    return family_class(name).from_attrs(attrs, **config)


def fields_needed(family: StageFamily) -> list[str]:
    """Every key the family may read, plus the gripper signals and joints for keyframes."""
    wanted: list[str] = []
    for need in family.required_fields:
        wanted += list(need) if isinstance(need, tuple) else [need]
    wanted += list(family.optional_fields) + list(GRIPPER_SIGNALS) + [keys.OBS_JOINT_POS]
    return list(dict.fromkeys(wanted))


def trajectory_keyframes(traj: Trajectory) -> list[int]:
    """Gripper keyframes of one episode, or [] if it has no gripper signal."""
    signal = {k: traj[k] for k in GRIPPER_SIGNALS if k in traj}
    if not signal:
        return []
    n = len(next(iter(signal.values())))
    batch = EpisodeBatch([n])
    return keyframes_from_conditions(Gripper().conditions(signal, batch), batch)[0]


def annotate_trajectory(
    traj: Trajectory,
    family: str | StageFamily | None = None,
    attrs: Mapping[str, Any] | None = None,
    **config: Any,
) -> EpisodeAnnotation:
    """Stages + keyframes of one episode given as arrays (the ROS recorder's entry point)."""
    fam = resolve_family(family, attrs, **config)
    seg = run_separator(fam, traj)
    return EpisodeAnnotation(
        family=fam.name,
        stage=seg.stage.astype(np.int16),
        stage_names=list(fam.stage_names),
        keyframes=trajectory_keyframes(traj),
    )


def annotate_episode(store, episode_id: str | int, family: str | None = None, **config: Any) -> EpisodeAnnotation:
    """Compute and write ``stage`` + stage names + keyframes into one episode of an
    :class:`~stare_robot.data.store.EpisodeStore`. Returns the annotation."""
    reader = store[episode_id]
    fam = resolve_family(family, reader.attrs, **config)
    traj = reader.load([k for k in fields_needed(fam) if k in reader])
    note = annotate_trajectory(traj, fam)
    store.update_episode(reader.episode_id, arrays=note.store_arrays(), attrs=note.store_attrs())
    return note
