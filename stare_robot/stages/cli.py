"""``stare-robot stages``: annotate an episode store with STARE stages and keyframes, and show them.

    stare-robot stages annotate data/pushcube.zarr                  # every episode, idempotent
    stare-robot stages annotate data/real.zarr --family gripper     # every episode as gripper
    stare-robot stages show data/pushcube.zarr --episodes 0 1 2 --out pushcube_stages.png

``annotate --family`` labels every chosen episode with that family, replacing the one an episode
had (the change is reported); without it each episode's ``stage_family`` attr is used.
``show --family`` only applies to episodes without the attr.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import tyro
from tqdm import tqdm

from stare_robot import keys
from stare_robot.data.errors import StoreError
from stare_robot.data.store import EpisodeStore
from stare_robot.stages.annotate import (
    annotate_episode,
    fields_needed,
    resolve_family,
    trajectory_keyframes,
)
from stare_robot.stages.calculator import conditional_stage_success, episode_success, stage_costs
from stare_robot.stages.family import TrajectoryError
from stare_robot.stages.registry import UnknownFamilyError
from stare_robot.stages.separator import run_separator


@dataclasses.dataclass
class Annotate:
    """Write the per-step `stage` array, stage names and gripper keyframes into each episode."""

    path: tyro.conf.Positional[Annotated[str, tyro.conf.arg(metavar="PATH")]]
    """The episode store directory."""
    family: str | None = None
    """Stage family to label every chosen episode with (e.g. push_pull, gripper), replacing the one
    an episode had; default: each episode's own `stage_family` attr."""
    episodes: tuple[str, ...] = ()
    """Episode ids or positions to annotate (default: all)."""


@dataclasses.dataclass
class Show:
    """Print per-stage statistics and write a PNG timeline of chosen episodes."""

    path: tyro.conf.Positional[Annotated[str, tyro.conf.arg(metavar="PATH")]]
    """The episode store directory."""
    family: str | None = None
    """Stage family for episodes without a `stage_family` attr."""
    episodes: tuple[str, ...] = ("0",)
    """Episode ids or positions to plot."""
    out: str | None = None
    """PNG path (default: <PATH without .zarr>_stages.png next to the store)."""
    json: bool = False
    """Print the statistics as JSON instead of a table."""


Command = (
    Annotated[Annotate, tyro.conf.subcommand("annotate")]
    | Annotated[Show, tyro.conf.subcommand("show")]
)


def _episode_ref(ref: str) -> str | int:
    return int(ref) if ref.lstrip("-").isdigit() else ref


def _load(store, episode_id, family_arg):
    """``show`` reads episodes as annotated: ``family_arg`` only for those without a family."""
    reader = store[episode_id]
    fam = resolve_family(reader.attrs.get(keys.ATTR_STAGE_FAMILY) or family_arg, reader.attrs)
    traj = reader.load([k for k in fields_needed(fam) if k in reader])
    return reader, fam, traj


def stage_statistics(store, family: str | None = None) -> dict[str, Any]:
    """Per family: per-stage mean length (steps, over episodes that entered it), mean cost,
    reached fraction, and conditional stage success, over every episode of the store."""
    groups: dict[str, dict[str, list]] = {}
    for episode_id in tqdm(store.episode_ids(), desc="stages", leave=False):
        reader, fam, traj = _load(store, episode_id, family)
        seg = run_separator(fam, traj)
        g = groups.setdefault(fam.name, {"names": list(fam.stage_names), "len": [], "cost": [],
                                         "furthest": [], "success": []})
        g["len"].append(np.bincount(seg.stage, minlength=fam.num_stages))
        g["cost"].append(stage_costs(seg)[0])
        g["furthest"].append(int(seg.furthest_stage[0]))
        g["success"].append(bool(reader.attrs.get(keys.ATTR_SUCCESS, episode_success(seg, traj)[0])))
    out = {}
    for name, g in groups.items():
        lengths, costs = np.array(g["len"], float), np.array(g["cost"])
        entered = lengths > 0
        with np.errstate(invalid="ignore"):
            mean_len = np.where(entered.any(0), (lengths * entered).sum(0) / entered.sum(0), np.nan)
        rows = conditional_stage_success(g["furthest"], g["names"], g["success"])
        out[name] = {
            "episodes": len(g["len"]),
            "stages": [
                {
                    "stage": stage,
                    "mean_length": _num(mean_len[k]),
                    "mean_cost": _num(np.nanmean(costs[:, k]) if entered[:, k].any() else np.nan),
                    "reached_fraction": float(entered[:, k].mean()),
                }
                for k, stage in enumerate(g["names"])
            ],
            "conditional_success": [r.to_dict() for r in rows],
        }
    return out


def _num(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


def _print_statistics(stats: dict[str, Any]) -> None:
    fmt = lambda x: "  n/a" if x is None else f"{x:7.4f}"
    for name, s in stats.items():
        print(f"family {name}: {s['episodes']} episodes")
        print(f"  {'stage':<12} {'mean len':>8} {'mean cost':>9} {'reached':>8}   P(stage | previous)")
        cond = {r["stage"]: r for r in s["conditional_success"]}
        for row in s["stages"]:
            c = cond[row["stage"]]
            mean_len = "n/a" if row["mean_length"] is None else f"{row['mean_length']:.1f}"
            print(f"  {row['stage']:<12} {mean_len:>8} {fmt(row['mean_cost']):>9} "
                  f"{row['reached_fraction']:>8.0%}   {c['probability']:.2f} ({c['reached']}/{c['given']})")
        if "success" in cond:
            c = cond["success"]
            print(f"  {'success':<12} {'':>8} {'':>9} {'':>8}   {c['probability']:.2f} ({c['reached']}/{c['given']})")


def show(store, args: Show) -> Path:
    # lazy: matplotlib costs ~1 s of start-up that `annotate` and `stats` do not need
    from stare_robot.stages.plot import plot_timelines

    stats = stage_statistics(store, args.family)
    print(json.dumps(stats, indent=1)) if args.json else _print_statistics(stats)
    rows = []
    for ref in args.episodes:
        reader, fam, traj = _load(store, _episode_ref(ref), args.family)
        seg = run_separator(fam, traj)
        title = f"{reader.episode_id}  {reader.attrs.get(keys.ATTR_TASK, '')}  family {fam.name}"
        if keys.ATTR_SUCCESS in reader.attrs:
            title += f"  success={reader.attrs[keys.ATTR_SUCCESS]}"
        rows.append((title, traj, seg, trajectory_keyframes(traj)))
    root = Path(store.root)
    out = Path(args.out) if args.out else root.with_name(root.name.removesuffix(".zarr") + "_stages.png")
    plot_timelines(rows, out)
    print(f"timeline of {len(rows)} episode(s) written to {out}", file=sys.stderr if args.json else sys.stdout)
    return out


def main(argv: list[str]) -> int:
    args = tyro.cli(Command, args=argv, prog="stare-robot stages")
    try:
        store = EpisodeStore.open(args.path)
        if isinstance(args, Show):
            show(store, args)
            return 0
        ids = [store[_episode_ref(r)].episode_id for r in args.episodes] or store.episode_ids()
        counts: dict[str, int] = {}
        relabelled: dict[str, int] = {}  # "old -> new" family changes asked for by --family
        for episode_id in tqdm(ids, desc="annotate", leave=False):
            before = store[episode_id].attrs.get(keys.ATTR_STAGE_FAMILY)
            note = annotate_episode(store, episode_id, family=args.family)
            counts[note.family] = counts.get(note.family, 0) + 1
            if before and before != note.family:
                change = f"{before} -> {note.family}"
                relabelled[change] = relabelled.get(change, 0) + 1
        summary = ", ".join(f"{n} with {fam}" for fam, n in counts.items()) or "none"
        print(f"annotated {len(ids)} episode(s) of {args.path}: {summary}")
        for change, n in relabelled.items():
            print(f"  {n} episode(s) re-labelled {change} (--family)")
    except (StoreError, TrajectoryError, UnknownFamilyError, ValueError) as err:
        print(f"stare-robot stages: {err}", file=sys.stderr)
        return 2
    return 0
