"""deploy.launch.py's graph, as the launch file declares it (executables, params file and
overrides), with ``sim:=true``: one recorded episode end to end against a served policy, for both
robots. Every node is its own process:

sim_robot (ManiSkill3: the Panda tabletop, or the SimplerEnv-Bridge WidowX scene from the shared
asset pack) -> policy_client -> ``stare-robot serve`` (a tiny untrained rgb pi0 with the robot's
state width and camera) -> robot_bridge -> sim_robot, recorded by episode_recorder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from graph_server import ServerProcess, tiny_rgb_checkpoint
from launch_files import launched_nodes
from ros_graph import REPO_ROOT, call, probe, spin_until, start_node  # noqa: F401  (fixtures)
from test_graph_closed_loop import IMAGE_SIZE, control_rate_for, is_hold, realtime_client, warm_up

from stare_robot import keys

pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.sim]

STEPS = 8
ROBOTS = {  # deploy robot:= -> (params file, state width, camera the policy sees, highest rate)
    "franka": ("franka_sim.yaml", 18, keys.DEFAULT_CAMERA, 5.0),
    "widowx": ("widowx_sim.yaml", 16, "3rd_view_camera", 2.0),  # 640x480 renders: a slower loop
}


def deploy_nodes(robot: str, sim: str, record: str) -> list:
    for context, nodes in launched_nodes(REPO_ROOT / "launch" / "deploy.launch.py"):
        if (context["robot"], context["sim"], context["record"]) == (robot, sim, record):
            return nodes
    raise AssertionError(f"deploy.launch.py has no run for robot:={robot} sim:={sim} record:={record}")


@pytest.mark.parametrize("robot", list(ROBOTS))
def test_deploy_sim_graph_runs_one_recorded_episode(robot, tmp_path, request, probe, start_node):
    from std_msgs.msg import Float64MultiArray
    from std_srvs.srv import SetBool, Trigger

    from stare_robot.data.store import EpisodeStore

    params_name, state_dim, camera, max_rate = ROBOTS[robot]
    if robot == "widowx":
        request.getfixturevalue("bridge_assets")
    server = ServerProcess(tiny_rgb_checkpoint(tmp_path / "ckpt", IMAGE_SIZE, state_dim=state_dim, cameras=(camera,)), tmp_path / "server.log")
    request.addfinalizer(server.kill)
    server.wait_ready()
    rate = min(max_rate, control_rate_for(warm_up(server.url)))  # a loaded machine: a slower rate
    per_node = {  # what the test changes: server, store, a rate this machine holds, the policy's camera
        "sim_robot": {"control_rate_hz": rate, "image_size": IMAGE_SIZE, "seed": 2},
        "robot_bridge": {"control_rate_hz": rate},
        "policy_client": {"server_url": server.url, "camera_name": camera, **realtime_client(rate)},
        "episode_recorder": {"store_path": str(tmp_path / "deploy.zarr"), "control_rate_hz": rate,
                             "camera_name": camera},
    }
    nodes = deploy_nodes(robot, "true", "true")
    assert [n.kwargs["executable"] for n in nodes] == list(per_node)
    procs = []
    for n in nodes:
        params_file, overrides_file = n.kwargs["parameters"]
        assert Path(params_file).name == params_name
        exe = n.kwargs["executable"]
        launch_overrides = yaml.safe_load(Path(overrides_file).read_text())[f"/**/{exe}"]["ros__parameters"]
        procs.append(start_node(exe, params_name, **{**launch_overrides, **per_node[exe]}))

    actions = []
    probe.create_subscription(Float64MultiArray, "action", lambda m: actions.append(np.array(m.data)), 50)
    start = probe.create_client(Trigger, "episode_recorder/start")
    stop = probe.create_client(Trigger, "episode_recorder/stop")
    label = probe.create_client(SetBool, "episode_recorder/label")
    success = probe.create_client(Trigger, "sim_robot/success")
    assert call(probe, start, Trigger.Request(), 240, procs).success
    spin_until(probe, lambda: sum(not is_hold(a) for a in actions) >= STEPS, 300,
               f"{STEPS} policy actions at {rate:g} Hz", procs)
    solved = call(probe, success, Trigger.Request(), 30, procs)
    assert "step" in solved.message
    assert call(probe, label, SetBool.Request(data=bool(solved.success)), 30, procs).success
    answer = call(probe, stop, Trigger.Request(), 120, procs)
    assert answer.success, answer.message
    report = json.loads(answer.message)
    ep = EpisodeStore.open(tmp_path / "deploy.zarr")[report["episode_id"]]
    assert len(ep) >= STEPS // 2  # frames at the camera's rate while the policy acted
    assert ep.attrs[keys.ATTR_ROBOT] == ("panda" if robot == "franka" else "widowx250s")
    assert ep[keys.obs_rgb(camera)].shape[0] == len(ep)
    recorded = ep[keys.ACTION][:]
    assert recorded.shape[1] == 7 and np.all(np.isfinite(recorded))
    assert np.any(np.abs(recorded[:, :6]) > 0)  # the policy's actions, not only holds
    joints = ep[keys.OBS_JOINT_POS][:]
    assert np.abs(joints - joints[0]).max() > 1e-3  # ... and the simulated arm followed them
    assert ep.attrs[keys.ATTR_SUCCESS] is bool(solved.success)
    assert all(p.proc.poll() is None for p in procs), "every node of the deploy graph still running"
    assert "watchdog" not in procs[1].log()  # actions kept coming: the bridge never had to hold
