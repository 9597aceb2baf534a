"""Preference pairs (tau+, tau-) for TPO / STA-TPO, built from episode stores and saved as JSON.

    python -m stare_robot.train.preferences data/rollouts.zarr [data/demos.zarr] --out pairs.json
    stare-robot pairs data/rollouts.zarr --out pairs.json --cap 50

Episodes are grouped by (task, instruction); pairs never cross groups. Within a group, in order
of preference strength (each kind shuffled with ``seed``, the list cut at ``cap`` per task, the
paper's default being 50, and no episode used in more than ``max_uses`` pairs, so that a rare
failure is not the rejected side of every pair):

1. ``success_vs_failure`` - a successful episode over a failed one;
2. ``success_by_cost``   - two successes, the lower total stage cost (sum of l_k) preferred, when
   the costs differ by more than ``min_cost_gap``;
3. ``failure_by_progress`` - two failures, the one that got to a later stage preferred.

Each episode's stages come from its ``stage`` array (written by ``stare-robot rollouts`` or
``stare-robot stages annotate``), else the separator runs here. Recorded robot episodes work the
same way: success is the operator's label (the ``success`` attr written by the recorder) and,
without object poses, the stages come from the gripper-only family. The pairs file names every
store and episode id with the stage costs used, so training on it is reproducible.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tyro
from tqdm.auto import tqdm
from tyro.conf import Positional

from stare_robot import keys
from stare_robot.data.errors import StoreError
from stare_robot.data.store import EpisodeStore
from stare_robot.stages import run_separator
from stare_robot.stages.annotate import fields_needed, resolve_family
from stare_robot.stages.calculator import stage_costs

PAIRS_FORMAT = "stare-robot-preference-pairs"
PAIRS_VERSION = 1
DEFAULT_CAP = 50  # pairs per task (the paper's protocol)
# Most pairs one episode may appear in. Measured (benchmarks/tpo_comparison.py, PullCube-v1):
# with 3 failures among 40 rollouts, 50 uncapped pairs reused each failure ~17 times and STA-TPO
# overfit to them (94 % -> 64 % success).
DEFAULT_MAX_USES = 4
KINDS = ("success_vs_failure", "success_by_cost", "failure_by_progress")


class PreferenceError(ValueError):
    """Preference data that cannot be used: mixed tasks, empty stages, unreadable pairs files."""


@dataclass
class EpisodeInfo:
    """What pair building needs to know about one stored episode."""

    store: str  # store path
    episode: str  # episode id
    task: str
    instruction: str
    success: bool
    stage_family: str
    stage_names: list[str]
    furthest_stage: int  # highest stage index entered
    stage_costs: list[float | None]  # (K,) l_k, None where never entered
    num_steps: int

    @property
    def total_cost(self) -> float:
        return float(sum(c for c in self.stage_costs if c is not None))


@dataclass
class PreferencePair:
    chosen: EpisodeInfo  # tau+
    rejected: EpisodeInfo  # tau-
    kind: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "chosen": asdict(self.chosen), "rejected": asdict(self.rejected)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreferencePair:
        return cls(EpisodeInfo(**d["chosen"]), EpisodeInfo(**d["rejected"]), d["kind"])


# ---------------------------------------------------------------------------------- episodes


def _family_for(reader) -> str:
    """The episode's stage family; the gripper-only family when no object pose was recorded."""
    family = reader.attrs.get(keys.ATTR_STAGE_FAMILY)
    if family:
        return str(family)
    if keys.SIM_OBJ_POSE not in reader:
        return "gripper"
    raise PreferenceError(
        f"episode {reader.episode_id} has object poses but no '{keys.ATTR_STAGE_FAMILY}' attr; "
        "run `stare-robot stages annotate` with --family first"
    )


def episode_info(store, episode_id: str) -> EpisodeInfo:
    """Stages and stage costs of one episode (stages from its ``stage`` array when present)."""
    reader = store[episode_id]
    attrs = reader.attrs
    if keys.ATTR_SUCCESS not in attrs:
        raise PreferenceError(
            f"episode {episode_id} of {store.root} has no '{keys.ATTR_SUCCESS}' attr; label it "
            "(the recorder's operator label or the simulator's success) before building pairs"
        )
    family = resolve_family(_family_for(reader), attrs)
    traj = reader.load([k for k in fields_needed(family) if k in reader])
    seg = run_separator(family, traj)
    if keys.STAGE in reader:  # keep the stored annotation (what training will read)
        seg.stage = np.asarray(reader[keys.STAGE][:], dtype=np.int16)
    stage = seg.stage.astype(np.int64)
    furthest = int(stage.max())
    counts = np.bincount(stage, minlength=family.num_stages)
    empty = [k for k in range(furthest + 1) if counts[k] == 0]
    if empty:
        names = [family.stage_names[k] for k in empty]
        raise PreferenceError(
            f"episode {episode_id} of {store.root}: stage(s) {names} are empty although the "
            f"episode reached stage {family.stage_names[furthest]!r}; stages must be entered in "
            "order (re-run `stare-robot stages annotate`)"
        )
    costs = stage_costs(seg)[0]
    return EpisodeInfo(
        store=str(store.root),
        episode=reader.episode_id,
        task=str(attrs.get(keys.ATTR_TASK, "")),
        instruction=str(attrs.get(keys.ATTR_INSTRUCTION, "")),
        success=bool(attrs[keys.ATTR_SUCCESS]),
        stage_family=family.name,
        stage_names=list(family.stage_names),
        furthest_stage=furthest,
        stage_costs=[
            None if not np.isfinite(c) or k > furthest else float(c) for k, c in enumerate(costs)
        ],
        num_steps=len(stage),
    )


def load_episode_infos(stores: list[Path | str], progress: bool = False) -> list[EpisodeInfo]:
    infos = []
    for path in stores:
        store = EpisodeStore.open(path)
        for eid in tqdm(
            store.episode_ids(), desc=f"stages {Path(path).name}", disable=not progress
        ):
            infos.append(episode_info(store, eid))
    return infos


# ------------------------------------------------------------------------------------- pairs


def check_pair(pair: PreferencePair, index: int = 0) -> None:
    """Raise :class:`PreferenceError` unless both sides share task, instruction and family."""
    a, b = pair.chosen, pair.rejected
    for field_name in ("task", "instruction", "stage_family"):
        if getattr(a, field_name) != getattr(b, field_name):
            mine, theirs = getattr(a, field_name), getattr(b, field_name)
            raise PreferenceError(
                f"pair {index} compares episode {a.episode} ({field_name} {mine!r}) with "
                f"episode {b.episode} ({field_name} {theirs!r}); a preference pair must share "
                "the task, the instruction and the stage family"
            )


def build_pairs(
    infos: list[EpisodeInfo],
    cap: int = DEFAULT_CAP,
    seed: int = 0,
    min_cost_gap: float = 1e-3,
    max_uses: int | None = DEFAULT_MAX_USES,
) -> list[PreferencePair]:
    """Pairs per (task, instruction) group, strongest kinds first, at most ``cap`` per task and
    at most ``max_uses`` pairs per episode (None: no limit)."""
    if cap < 1:
        raise ValueError(f"cap must be >= 1, got {cap}")
    if max_uses is not None and max_uses < 1:
        raise ValueError(f"max_uses must be >= 1 (or None for no limit), got {max_uses}")
    uses: dict[tuple[str, str], int] = defaultdict(int)
    groups: dict[tuple[str, str], list[EpisodeInfo]] = defaultdict(list)
    for info in infos:
        groups[(info.task, info.instruction)].append(info)
    per_task: dict[str, int] = defaultdict(int)
    pairs: list[PreferencePair] = []
    rng = np.random.default_rng(seed)
    for (task, _), members in sorted(groups.items()):
        wins = [m for m in members if m.success]
        losses = [m for m in members if not m.success]
        candidates = {
            "success_vs_failure": [(w, lo) for w in wins for lo in losses],
            "success_by_cost": [
                (a, b) for a in wins for b in wins if b.total_cost - a.total_cost > min_cost_gap
            ],
            "failure_by_progress": [
                (a, b) for a in losses for b in losses if a.furthest_stage > b.furthest_stage
            ],
        }
        for kind in KINDS:
            options = candidates[kind]
            for i in rng.permutation(len(options)):
                if per_task[task] >= cap:
                    break
                chosen, rejected = options[i]
                sides = [(chosen.store, chosen.episode), (rejected.store, rejected.episode)]
                if max_uses is not None and any(uses[side] >= max_uses for side in sides):
                    continue
                for side in sides:
                    uses[side] += 1
                pairs.append(PreferencePair(chosen, rejected, kind))
                per_task[task] += 1
    return pairs


def save_pairs(pairs: list[PreferencePair], path: Path | str, settings: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "format": PAIRS_FORMAT,
        "version": PAIRS_VERSION,
        "settings": settings,
        "pairs": [p.to_dict() for p in pairs],
    }
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(path)
    return path


def load_pairs(path: Path | str) -> list[PreferencePair]:
    """Read and check a pairs file written by :func:`save_pairs`."""
    path = Path(path)
    if not path.is_file():
        raise PreferenceError(
            f"pairs file {str(path)!r} does not exist (build it with `stare-robot pairs`)"
        )
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise PreferenceError(f"{path} is not a JSON pairs file: {err}") from err
    if not isinstance(doc, dict) or doc.get("format") != PAIRS_FORMAT:
        raise PreferenceError(f"{path} is not a preference pairs file (format {PAIRS_FORMAT!r})")
    pairs = [PreferencePair.from_dict(d) for d in doc["pairs"]]
    if not pairs:
        raise PreferenceError(f"{path} holds no pairs")
    for i, pair in enumerate(pairs):
        check_pair(pair, i)
    return pairs


def make_pairs_file(
    stores: list[Path | str],
    out: Path | str,
    cap: int = DEFAULT_CAP,
    seed: int = 0,
    progress: bool = False,
    max_uses: int | None = DEFAULT_MAX_USES,
) -> list[PreferencePair]:
    infos = load_episode_infos(stores, progress)
    pairs = build_pairs(infos, cap, seed, max_uses=max_uses)
    if not pairs:
        ok = sum(i.success for i in infos)
        raise PreferenceError(
            f"no preference pair in {[str(s) for s in stores]}: {len(infos)} episodes, {ok} "
            "successful, none comparable (need a success and a failure, two successes with "
            "different costs, or two failures reaching different stages under one task)"
        )
    settings = {"stores": [str(s) for s in stores], "cap": cap, "seed": seed, "max_uses": max_uses}
    save_pairs(pairs, out, settings)
    return pairs


@dataclass
class PairsArgs:
    """Build preference pairs from episode stores (rollouts, demos, recorded robot episodes)."""

    stores: Positional[list[Path]]
    """Episode stores to draw episodes from."""
    out: Path
    """Pairs JSON to write."""
    cap: int = DEFAULT_CAP
    """Most pairs per task."""
    max_uses: int = DEFAULT_MAX_USES
    """Most pairs one episode may appear in (0: no limit)."""
    seed: int = 0
    quiet: bool = False


def main(argv: list[str] | None = None) -> int:
    args = tyro.cli(PairsArgs, args=argv, prog="stare-robot pairs")
    try:
        pairs = make_pairs_file(
            args.stores, args.out, args.cap, args.seed, not args.quiet, args.max_uses or None
        )
    except (PreferenceError, StoreError, ValueError) as err:
        print(f"stare-robot pairs: {err}", file=sys.stderr)
        return 2
    kinds = {k: sum(p.kind == k for p in pairs) for k in KINDS}
    print(f"{len(pairs)} pairs ({', '.join(f'{n} {k}' for k, n in kinds.items())}) -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
