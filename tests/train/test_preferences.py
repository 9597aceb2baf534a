"""Preference pairs from recorded (robot-style, gripper-family) episode stores."""

from __future__ import annotations

import json

import numpy as np
import pytest
from preference_fakes import make_store, write_episode

from stare_robot import keys
from stare_robot.data.store import EpisodeStore
from stare_robot.train.preferences import (
    PreferenceError,
    build_pairs,
    load_episode_infos,
    load_pairs,
    main,
    make_pairs_file,
)

# two tasks; in A: two successes (one with a chattering gripper = higher cost) and two failures
# that got to different stages; in B: one success and one failure
EPISODES = [
    {"task": "A", "success": True, "closes_at": 4, "opens_at": 10},
    {"task": "A", "success": True, "closes_at": 4, "opens_at": 10, "length": 20},
    {"task": "A", "success": False, "closes_at": 4, "opens_at": None},
    {"task": "A", "success": False, "closes_at": None, "opens_at": None},
    {"task": "B", "success": True, "closes_at": 3, "opens_at": 9},
    {"task": "B", "success": False, "closes_at": None, "opens_at": None},
]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("prefs") / "eps.zarr", EPISODES)


def test_pairs_stay_within_a_task_and_prefer_success_then_cost_then_progress(store_path):
    infos = load_episode_infos([store_path])
    assert all(i.stage_family == "gripper" for i in infos)  # no object poses: gripper family
    pairs = build_pairs(infos, cap=50, seed=0)
    assert pairs
    for p in pairs:
        assert p.chosen.task == p.rejected.task
        if p.kind == "success_vs_failure":
            assert p.chosen.success and not p.rejected.success
        elif p.kind == "success_by_cost":
            assert p.chosen.success and p.rejected.success
            assert p.chosen.total_cost < p.rejected.total_cost
        else:
            assert not p.chosen.success and not p.rejected.success
            assert p.chosen.furthest_stage > p.rejected.furthest_stage
    kinds_a = [p.kind for p in pairs if p.chosen.task == "A"]
    # 2 successes x 2 failures, then the failures ordered by progress
    assert kinds_a.count("success_vs_failure") == 4
    assert kinds_a.count("failure_by_progress") == 1
    assert kinds_a.index("failure_by_progress") > max(
        i for i, k in enumerate(kinds_a) if k == "success_vs_failure"
    )
    assert [p.kind for p in pairs if p.chosen.task == "B"] == ["success_vs_failure"]


def test_cap_keeps_the_strongest_kind_first_and_seed_makes_it_reproducible(store_path):
    infos = load_episode_infos([store_path])
    capped = build_pairs(infos, cap=2, seed=3)
    per_task = {t: [p for p in capped if p.chosen.task == t] for t in ("A", "B")}
    assert len(per_task["A"]) == 2 and len(per_task["B"]) == 1
    assert all(p.kind == "success_vs_failure" for p in per_task["A"])
    again = build_pairs(infos, cap=2, seed=3)
    assert [(p.chosen.episode, p.rejected.episode) for p in again] == [
        (p.chosen.episode, p.rejected.episode) for p in capped
    ]


def test_pairs_file_round_trips_and_names_the_episodes(store_path, tmp_path):
    out = tmp_path / "pairs.json"
    pairs = make_pairs_file([store_path], out, cap=50, seed=0)
    loaded = load_pairs(out)
    assert [p.to_dict() for p in loaded] == [p.to_dict() for p in pairs]
    doc = json.loads(out.read_text())
    assert doc["settings"]["stores"] == [str(store_path)]
    store = EpisodeStore.open(store_path)
    for p in loaded:
        assert p.chosen.episode in store and p.rejected.episode in store


def test_a_pair_across_tasks_is_rejected_with_a_clear_error(store_path, tmp_path):
    out = tmp_path / "pairs.json"
    make_pairs_file([store_path], out)
    doc = json.loads(out.read_text())
    b_episode = next(p for p in doc["pairs"] if p["chosen"]["task"] == "B")["chosen"]
    doc["pairs"][0]["rejected"] = b_episode
    out.write_text(json.dumps(doc))
    with pytest.raises(
        PreferenceError,
        match=r"pair 0 compares .*\(task 'A'\) with .*\(task 'B'\).*must share the task",
    ):
        load_pairs(out)


def test_an_empty_stage_is_a_clear_error(tmp_path):
    store = EpisodeStore.create(tmp_path / "bad.zarr")
    episode = write_episode(store, "A", True, closes_at=4, opens_at=10)
    stage = np.asarray(store[episode][keys.STAGE][:])
    stage[stage == 1] = 2  # jump from approach straight to retreat
    store.update_episode(episode, arrays={keys.STAGE: stage})
    with pytest.raises(PreferenceError, match=r"stage\(s\) \['skill'\] are empty"):
        load_episode_infos([tmp_path / "bad.zarr"])


def test_cli_writes_pairs_and_reports_bad_input(store_path, tmp_path, capsys):
    out = tmp_path / "cli.json"
    assert main([str(store_path), "--out", str(out), "--quiet"]) == 0
    assert "pairs" in capsys.readouterr().out and out.is_file()
    lonely = make_store(
        tmp_path / "one.zarr", [{"task": "A", "success": True, "closes_at": 4, "opens_at": 10}]
    )
    assert main([str(lonely), "--out", str(tmp_path / "none.json"), "--quiet"]) == 2
    assert "no preference pair" in capsys.readouterr().err


def test_max_uses_spreads_a_rare_failure_over_few_pairs(tmp_path):
    # five successes and a single failure: uncapped, the failure is the rejected side of all
    # five success-vs-failure pairs; with max_uses=2 it appears in two pairs at most
    specs = [{"task": "A", "success": True, "closes_at": 4, "opens_at": 10 + i} for i in range(5)]
    specs.append({"task": "A", "success": False, "closes_at": None, "opens_at": None})
    infos = load_episode_infos([make_store(tmp_path / "rare.zarr", specs)])
    failure = next(i.episode for i in infos if not i.success)

    def uses(pairs) -> dict[str, int]:
        count: dict[str, int] = {}
        for p in pairs:
            for side in (p.chosen, p.rejected):
                count[side.episode] = count.get(side.episode, 0) + 1
        return count

    free = build_pairs(infos, cap=50, seed=0, max_uses=None)
    assert sum(p.rejected.episode == failure for p in free) == 5
    capped = build_pairs(infos, cap=50, seed=0, max_uses=2)
    assert sum(p.rejected.episode == failure for p in capped) == 2
    assert max(uses(capped).values()) <= 2 < max(uses(free).values())
    # the strongest kind still comes first
    kinds = [p.kind for p in capped]
    assert kinds[:2] == ["success_vs_failure"] * 2 and set(kinds[2:]) == {"success_by_cost"}
    with pytest.raises(ValueError, match="max_uses must be >= 1"):
        build_pairs(infos, max_uses=0)
