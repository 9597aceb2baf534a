"""`stare-robot store info|list PATH`."""

from __future__ import annotations

import json

import numpy as np

from stare_robot import cli, keys
from stare_robot.data.store import EpisodeStore


def make_store(tmp_path):
    store = EpisodeStore.create(tmp_path / "s", attrs={keys.ATTR_TASK: "PushCube-v1"})
    for steps, success in ((3, True), (5, False), (4, True)):
        with store.new_episode(attrs={keys.ATTR_TASK: "PushCube-v1"}) as ep:
            for _ in range(steps):
                ep.append(
                    {
                        keys.OBS_STATE: np.zeros(2, np.float32),
                        keys.obs_rgb("cam"): np.zeros((4, 4, 3), np.uint8),
                    }
                )
            ep.set_attrs(success=success)
    return store


def test_list_prints_each_episode(tmp_path, capsys):
    store = make_store(tmp_path)
    assert cli.main(["store", "list", str(store.root), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["steps"], r["success"], r["task"]) for r in rows] == [
        ("episode_000000", 3, True, "PushCube-v1"),
        ("episode_000001", 5, False, "PushCube-v1"),
        ("episode_000002", 4, True, "PushCube-v1"),
    ]
    assert cli.main(["store", "list", str(store.root)]) == 0
    text = capsys.readouterr().out
    assert "episode_000001" in text and "3 episodes" in text


def test_info_summarises_and_cleans_stale_versions(tmp_path, capsys):
    store = make_store(tmp_path)
    abandoned = store.new_episode()  # a writer that never finishes, like a crashed one
    abandoned.append({keys.ACTION: np.zeros(7, np.float32)})
    assert cli.main(["store", "info", str(store.root), "--json", "--older-than-s", "0"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["episodes"] == 3 and info["steps"] == 12
    assert abs(info["success_rate"] - 2 / 3) < 1e-9
    assert info["attrs"][keys.ATTR_TASK] == "PushCube-v1"
    assert info["arrays_of_first_episode"][keys.obs_rgb("cam")] == {
        "shape": [3, 4, 4, 3],
        "dtype": "uint8",
    }
    assert info["stale_versions"] == [str(abandoned.path)]
    assert cli.main(["store", "info", str(store.root), "--clean", "--older-than-s", "0"]) == 0
    assert "removed 1 stale versions" in capsys.readouterr().out
    assert not abandoned.path.exists() and len(store) == 3


def test_bad_path_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["store", "info", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "does not exist" in err and "Traceback" not in err
