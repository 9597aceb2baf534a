"""Replay a recorded sim episode open-loop from its seed.

    from stare_robot.data.store import EpisodeStore
    from stare_robot.sim.replay import replay_episode

    for ep in EpisodeStore.open("data/pushcube.zarr"):
        assert replay_episode(ep)["success"]

physx_cpu is deterministic, so re-creating the env from the episode attrs, resetting with the
recorded seed and executing the recorded actions reproduces the demo exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stare_robot.sim.demos import EPISODE_STEP_LIMIT
from stare_robot.sim.env import SimEnv, make_env

from stare_robot import keys


def replay_episode(
    episode_reader, sim: SimEnv | None = None, sim_backend: str = "physx_cpu"
) -> dict[str, Any]:
    """Execute ``episode_reader``'s actions from its seed; report whether it succeeds again.

    ``episode_reader``: an :class:`~stare_robot.data.reader.EpisodeReader` (attrs ``task``,
    ``seed``, array ``action`` (T, 7)). ``sim``: an env of the same task to reuse (state mode is
    enough: rendering never changes the physics); a new one is made and closed when None.
    Returns ``success`` (the task succeeds after the last action), ``success_any``, ``num_steps``
    and ``max_obj_pos_error`` (metres between replayed and recorded ``sim/obj_pose`` positions,
    NaN if the episode has none).
    """
    attrs = episode_reader.attrs
    missing = [k for k in (keys.ATTR_TASK, keys.ATTR_SEED) if k not in attrs]
    if missing or keys.ACTION not in episode_reader:
        raise ValueError(
            f"episode {getattr(episode_reader, 'episode_id', '?')} cannot be replayed: it lacks "
            f"{', '.join(missing + ([] if keys.ACTION in episode_reader else [keys.ACTION]))}"
        )
    actions = np.asarray(episode_reader[keys.ACTION][:], np.float32)
    recorded = (
        np.asarray(episode_reader[keys.SIM_OBJ_POSE][:])
        if keys.SIM_OBJ_POSE in episode_reader
        else None
    )
    owned = sim is None
    if sim is None:
        sim = make_env(
            attrs[keys.ATTR_TASK],
            "state",
            sim_backend=sim_backend,
            max_episode_steps=max(EPISODE_STEP_LIMIT, len(actions) + 1),
        )
    elif sim.spec.name != attrs[keys.ATTR_TASK]:
        raise ValueError(f"sim is for {sim.spec.name}, the episode for {attrs[keys.ATTR_TASK]}")
    try:
        step = sim.reset(seed=int(attrs[keys.ATTR_SEED]), reconfigure=True)
        success_any, error = False, 0.0
        for t, action in enumerate(actions):
            if recorded is not None:  # the recorded pose is the one before action t
                replayed = step.privileged[keys.SIM_OBJ_POSE][:3]
                error = max(error, float(np.linalg.norm(replayed - recorded[t, :3])))
            step = sim.step(action)
            success_any |= bool(step.success)
    finally:
        if owned:
            sim.close()
    return {
        "success": bool(step.success),
        "success_any": success_any,
        "num_steps": len(actions),
        "max_obj_pos_error": error if recorded is not None else float("nan"),
    }
