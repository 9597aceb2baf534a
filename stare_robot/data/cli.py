"""``stare-robot store``: inspect an episode store.

stare-robot store info data/pushcube.zarr                 # attrs, counts, arrays, stale data
stare-robot store info data/pushcube.zarr --clean --older-than-s 3600
stare-robot store list data/pushcube.zarr                 # one line per episode
stare-robot store list data/pushcube.zarr --json
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Annotated, Any

import tyro

from stare_robot.data.errors import StoreError
from stare_robot.data.store import EpisodeStore
from stare_robot.keys import ATTR_SUCCESS, ATTR_TASK


@dataclasses.dataclass
class Info:
    """Store attrs, episode count, success rate, array schema and leftover (stale) versions."""

    path: tyro.conf.Positional[Annotated[str, tyro.conf.arg(metavar="PATH")]]
    """The store directory."""
    clean: bool = False
    """Delete stale versions (crashed writers, replaced versions) older than --older-than-s."""
    older_than_s: float = 3600.0
    """Age in seconds after which an unreferenced version counts as stale."""
    json: bool = False
    """Print one JSON object instead of text."""


@dataclasses.dataclass
class List:
    """One line per committed episode: id, steps, success, task."""

    path: tyro.conf.Positional[Annotated[str, tyro.conf.arg(metavar="PATH")]]
    json: bool = False
    """Print a JSON list instead of text."""


Command = (
    Annotated[Info, tyro.conf.subcommand("info")] | Annotated[List, tyro.conf.subcommand("list")]
)


def episode_rows(store: EpisodeStore) -> list[dict[str, Any]]:
    rows = []
    for ep in store:
        rows.append(
            {
                "id": ep.episode_id,
                "steps": len(ep),
                ATTR_SUCCESS: ep.attrs.get(ATTR_SUCCESS),
                ATTR_TASK: ep.attrs.get(ATTR_TASK),
            }
        )
    return rows


def store_info(store: EpisodeStore, older_than_s: float) -> dict[str, Any]:
    rows = episode_rows(store)
    successes = [r[ATTR_SUCCESS] for r in rows if r[ATTR_SUCCESS] is not None]
    first = store[0] if rows else None
    arrays = (
        {key: {"shape": list(first.shape(key)), "dtype": str(first.dtype(key))} for key in first}
        if first
        else {}
    )
    return {
        "path": str(store.root),
        "attrs": store.attrs,
        "episodes": len(rows),
        "steps": sum(r["steps"] for r in rows),
        "success_rate": (sum(map(bool, successes)) / len(successes)) if successes else None,
        "arrays_of_first_episode": arrays,
        "stale_versions": [str(p) for p in store.stale_versions(older_than_s)],
    }


def _print_info(info: dict[str, Any]) -> None:
    print(f"store      {info['path']}")
    for name, value in info["attrs"].items():
        print(f"  {name}: {value}")
    rate = "n/a" if info["success_rate"] is None else f"{100 * info['success_rate']:.1f}%"
    print(f"episodes   {info['episodes']}  steps {info['steps']}  success {rate}")
    if info["arrays_of_first_episode"]:
        print("arrays (first episode):")
        for key, meta in info["arrays_of_first_episode"].items():
            print(f"  {key:<28} {tuple(meta['shape'])!s:<20} {meta['dtype']}")
    print(f"stale versions (older than the threshold): {len(info['stale_versions'])}")
    for path in info["stale_versions"]:
        print(f"  {path}")


def _print_rows(rows: list[dict[str, Any]]) -> None:
    print(f"{'id':<16} {'steps':>6}  {'success':<7}  task")
    for r in rows:
        print(f"{r['id']:<16} {r['steps']:>6}  {r[ATTR_SUCCESS]!s:<7}  {r[ATTR_TASK]}")
    print(f"{len(rows)} episodes")


def main(argv: list[str]) -> int:
    args = tyro.cli(Command, args=argv, prog="stare-robot store")
    try:
        store = EpisodeStore.open(args.path)
        if isinstance(args, List):
            rows = episode_rows(store)
            print(json.dumps(rows, indent=1)) if args.json else _print_rows(rows)
            return 0
        info = store_info(store, args.older_than_s)
        if args.clean:
            removed = store.clean(args.older_than_s)
            info["removed"] = [str(p) for p in removed]
            info["stale_versions"] = [str(p) for p in store.stale_versions(args.older_than_s)]
        if args.json:
            print(json.dumps(info, indent=1))
        else:
            _print_info(info)
            if args.clean:
                print(f"removed {len(info['removed'])} stale versions")
    except StoreError as err:
        print(f"stare-robot store: {err}", file=sys.stderr)
        return 2
    return 0
