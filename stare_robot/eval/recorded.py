"""Evaluate recorded episodes (sim rollouts or robot recordings) with the simulation metrics.

Each committed episode of an episode store becomes an :class:`EpisodeOutcome`: success from the
``success`` attr (the recorder's label; else the last ``sim/success``), length, the furthest stage
from the ``stage`` array and grasp from ``sim/is_grasped`` when recorded (in sim) — then
:func:`stare_robot.eval.metrics.summarize` gives the same report as ``stare-robot eval``::

    summary = evaluate_store("data/robot.zarr")
    write_report({"robot": summary}, "reports/robot")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stare_robot import keys
from stare_robot.data.store import EpisodeStore
from stare_robot.eval.metrics import EpisodeOutcome, summarize


class RecordedEvalError(ValueError):
    """The store's episodes cannot be evaluated together (message says why)."""


def episode_outcome(episode) -> EpisodeOutcome:
    attrs = episode.attrs
    if keys.ATTR_SUCCESS in attrs:
        success = bool(attrs[keys.ATTR_SUCCESS])
    elif keys.SIM_SUCCESS in episode:
        success = bool(np.asarray(episode[keys.SIM_SUCCESS][:])[-1])
    else:
        raise RecordedEvalError(
            f"episode {episode.episode_id} has no success label (attr {keys.ATTR_SUCCESS!r}); "
            "label it with the recorder's ~/label service before stopping"
        )
    stage = np.asarray(episode[keys.STAGE][:]) if keys.STAGE in episode else np.zeros(1, int)
    grasped = bool(np.any(episode[keys.SIM_IS_GRASPED][:])) if keys.SIM_IS_GRASPED in episode else None
    seed = attrs.get(keys.ATTR_SEED)
    return EpisodeOutcome(seed=None if seed is None else int(seed), success=success,
                          length=len(episode), furthest_stage=int(stage.max()), grasped=grasped,
                          extra={"episode_id": episode.episode_id,
                                 "source": attrs.get(keys.ATTR_SOURCE)})


def evaluate_store(path: str | Path) -> dict:
    """Summary (``summarize`` format, plus ``task`` and ``source``) of every committed episode."""
    store = EpisodeStore.open(path)
    episodes = list(store)
    if not episodes:
        raise RecordedEvalError(f"episode store {path} has no committed episodes to evaluate")
    names = {tuple(ep.attrs.get(keys.ATTR_STAGE_NAMES, ["episode"])) for ep in episodes}
    if len(names) > 1:
        raise RecordedEvalError(
            f"episodes in {path} use different stage names {sorted(names)}; annotate them with one "
            "family (stare-robot stages annotate --family ...) before evaluating together"
        )
    summary = summarize([episode_outcome(ep) for ep in episodes], list(names.pop()))
    summary["task"] = episodes[0].attrs.get(keys.ATTR_TASK, store.attrs.get(keys.ATTR_TASK))
    summary["source"] = sorted({str(ep.attrs.get(keys.ATTR_SOURCE)) for ep in episodes})
    return summary
