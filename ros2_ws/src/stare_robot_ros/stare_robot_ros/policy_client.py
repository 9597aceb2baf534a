"""``policy_client``: observations -> policy server -> 7-D actions, at the control rate, safely.

Pairs the newest camera image (``image_topic``, resized to the policy's size), joint state
(``joint_states_topic``: ``obs/state`` = the 9 Panda qpos incl. fingers, then the 9 qvel),
end-effector pose (``ee_pose_topic``, from robot_bridge) and, for sim-only state-mode policies,
privileged env state (``env_state_topic``, std_msgs/Float32MultiArray) into one observation,
queries the server with :class:`stare_robot.client.PolicyClient`, and publishes the chunk one step
per tick on ``action_topic`` (std_msgs/Float64MultiArray) for robot_bridge. When the observation
is stale or the server slow, down, erroring or answering a malformed/NaN chunk it publishes hold
actions (zero motion, gripper unchanged), reports the reason on ``~/status`` (std_msgs/String,
JSON) and the log, and resumes with the next good answer. The policy's metadata is checked at
start: an input the graph cannot provide is refused by name (exit status 2).

The server is asked for its metadata on a thread while the node already runs (``~/status``
reports ``connecting``; nothing is commanded before the first answer, so robot_bridge's watchdog
holds the arm). A server started with ``--auth-token`` needs the same token: the ``token``
parameter or, when that is "", ``$STARE_ROBOT_TOKEN`` (preferred: a ``-p`` value shows in the
process list). The token is never logged nor reported, and the parameter is undeclared once read
(no parameter service hands it out). A refused token (HTTP 401/403) is reported by name,
``authentication failed: ...``, on ``~/status`` (``connected: false``) and as an error in the log
as soon as the server answers; the node keeps holding and asks again every
``auth_retry_period_s`` (default 5 s), never giving up: restarting the server with the robot's
token resumes the graph. The same holds mid-run (the control loop names it and retries at that
period). An unreachable server is asked again every ``retry_period_s`` until
``connect_timeout_s``, then the node exits (status 2, "no policy server at ..."). ``~/status`` is
re-published every ``status_period_s`` (late subscribers such as ``stare-robot robot status``)
and counts ``resets``.

``lockstep: true`` (sim_robot in lock-step): each action waits for a joint state newer than the
one the previous action followed, and a hold publishes nothing (every command is a physics step;
the sim clock stands still while the server thinks or a step's sensor messages are still
arriving), so the graph steps exactly like an in-process rollout. The first action waits for
``lockstep_min_subscribers`` subscribers on ``action_topic``: a lock-step action the bridge does
not hear would stall the graph, and one the recorder misses would be recorded as a hold.

``execute_steps`` (0 = the whole chunk) runs only the first steps of each chunk before asking
again, like ``stare-robot eval --execute-steps``. ``~/reset`` (std_srvs/Trigger) starts a new
episode: queued steps, any outstanding answer and every received message are forgotten (call it
after resetting the robot, so lock-step sim time may start again from 0).

    policy_client --ros-args --params-file launch/config/franka_sim.yaml -p server_url:=http://127.0.0.1:8000
    STARE_ROBOT_TOKEN=secret policy_client --ros-args --params-file launch/config/franka_sim_state.yaml
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import NamedTuple

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float32MultiArray, Float64MultiArray, String
from std_srvs.srv import Trigger

from stare_robot.client import PolicyAuthError, PolicyClient, PolicyServerError
from stare_robot.deploy import executor as ex
from stare_robot.deploy import pairing
from stare_robot.policies.base import PolicyMetadata
from stare_robot.robots.profiles import JointStateError, get_profile, order_joints
from stare_robot_ros import conversions as conv
from stare_robot_ros.node_runner import NodeConfigError, run_node

TOKEN_ENV = "STARE_ROBOT_TOKEN"  # the server's token when the token parameter is ""
AUTH_FAILED = "authentication failed"  # how a refused token is named on ~/status and in the log


class PolicyClientNode(Node):
    def __init__(self, parameter_overrides=None):
        super().__init__("policy_client", parameter_overrides=parameter_overrides)
        p = self._declare_parameters()
        for name in ("control_rate_hz", "retry_period_s", "auth_retry_period_s"):
            if p[name] <= 0:
                raise NodeConfigError(f"{name} must be > 0, got {p[name]}")
        if p["execute_steps"] < 0:
            raise NodeConfigError(f"execute_steps must be >= 0 (0 = the whole chunk), got {p['execute_steps']}")
        try:
            self.profile = get_profile(p["robot"])
            self.joint_names = [*self.profile.ros_arm_joints(p["joint_prefix"]),
                                *self.profile.ros_gripper_joints(p["joint_prefix"])]
            self.client = PolicyClient(
                p["server_url"], token=self._token(), transport=p["transport"],
                timeout=p["request_timeout_s"], connect_timeout=min(2.0, p["request_timeout_s"] * 4),
                retries=0, connect=False)
        except ValueError as err:
            raise NodeConfigError(str(err)) from err
        self.p = p
        self.metadata = None
        self.loop: ex.ControlLoop | None = None  # built once the server has answered
        self._last_stamp = -np.inf  # joint-state stamp the previous action followed (lock-step)
        self._last_reason = ""
        self._chunks_seen = 0
        self._logged_reason = "-"
        self._faults_logged = 0
        self._status = {}
        self.resets = 0  # ~/reset calls served (on ~/status)
        self.action_pub = self.create_publisher(Float64MultiArray, p["action_topic"], 10)
        self.status_pub = self.create_publisher(String, "~/status", 10)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.create_timer(1.0 / p["control_rate_hz"], self._tick)
        if p["status_period_s"] > 0:  # late subscribers (``stare-robot robot status``) hear it too
            self.create_timer(p["status_period_s"], self._republish_status)
        self.connector = Connector(self.client, p["server_url"], p["connect_timeout_s"],
                                   p["retry_period_s"], p["auth_retry_period_s"])

    def _declare_parameters(self) -> dict:
        defaults = {
            "robot": "panda",
            "joint_prefix": "panda",
            "server_url": "http://127.0.0.1:8000",
            "transport": "http",  # http | websocket
            # the server's --auth-token; "" = the STARE_ROBOT_TOKEN environment variable (better:
            # a -p value shows in the process list). Never logged nor reported on ~/status.
            "token": "",
            "connect_timeout_s": 60.0,  # wait this long for the server at start-up
            # a refused token (401/403) is asked again this often, holding meanwhile, never given up:
            # restarting the server with the robot's token resumes without touching the graph
            "auth_retry_period_s": 5.0,
            "status_period_s": 1.0,  # re-publish the latest ~/status this often (0 = on change only)
            "instruction": "",
            "control_rate_hz": 20.0,
            "lockstep": False,
            # lock-step: act once this many nodes listen on action_topic (bridge, recorder, ...):
            # an action sent before a subscriber is matched never reaches it
            "lockstep_min_subscribers": 1,
            "max_observation_age_s": 0.25,  # refuse observations older than this (receive time)
            "max_stamp_skew_s": 0.1,  # image / pose stamps this close to the joint state's
            "request_timeout_s": 0.5,  # no answer by then = server slow -> hold
            "retry_period_s": 0.2,  # after an error, ask again this much later
            "wait_fraction": 0.8,  # of a control period, waiting for an answer inside a tick
            "execute_steps": 0,  # actions of each chunk executed before asking again; 0 = all
            "camera_name": "base_camera",  # the camera name in the policy's inputs
            "image_topic": "camera/image_raw",  # "" = no camera in this graph
            "joint_states_topic": "joint_states",
            "ee_pose_topic": "ee_pose",
            "env_state_topic": "",  # sim_robot's privileged state (state-mode policies only)
            "action_topic": "action",
        }
        return {k: self.declare_parameter(k, v).value for k, v in defaults.items()}

    def _token(self) -> str | None:
        """The token parameter, else $STARE_ROBOT_TOKEN; the parameter is then undeclared so the
        graph's parameter services (``ros2 param get``) cannot read it back."""
        token = self.get_parameter("token").value or os.environ.get(TOKEN_ENV, "")
        self.undeclare_parameter("token")
        return token or None

    def _start_control(self, metadata) -> None:
        """The server answered: check the policy against this graph, subscribe to its inputs."""
        p = self.p
        graph = pairing.GraphInputs(camera=p["camera_name"] if p["image_topic"] else None,
                                    ee_pose=bool(p["ee_pose_topic"]),
                                    env_state=bool(p["env_state_topic"]))
        try:
            sources = pairing.check_inputs_available(metadata, graph)
        except ValueError as err:
            raise NodeConfigError(str(err)) from err
        if metadata.action_dim != 7:
            raise NodeConfigError(f"policy {metadata.name!r} has action_dim "
                                  f"{metadata.action_dim}; robot_bridge takes 7-D EE deltas")
        self.metadata = metadata
        self.pairer = pairing.ObservationPairer(sources, p["max_observation_age_s"], p["max_stamp_skew_s"])
        period = 1.0 / p["control_rate_hz"]
        self.loop = ex.ControlLoop(
            self.client, metadata.action_dim, request_timeout_s=p["request_timeout_s"],
            wait_s=p["wait_fraction"] * period, retry_period_s=p["retry_period_s"],
            auth_retry_period_s=p["auth_retry_period_s"],
            lockstep=p["lockstep"], sensor_grace_s=p["max_observation_age_s"],
            execute_steps=p["execute_steps"] or None,
        )
        self.create_subscription(JointState, p["joint_states_topic"], self._on_joints, 10)
        if pairing.SOURCE_IMAGE in sources:
            self.create_subscription(Image, p["image_topic"], self._on_image, qos_profile_sensor_data)
        if pairing.SOURCE_EE_POSE in sources:
            self.create_subscription(PoseStamped, p["ee_pose_topic"], self._on_pose, 10)
        if pairing.SOURCE_ENV_STATE in sources:
            self.create_subscription(Float32MultiArray, p["env_state_topic"], self._on_env_state, 10)
        self.get_logger().info(f"policy {metadata.name} {metadata.version} at "
                               f"{self.client.url}, inputs {sorted(metadata.inputs)}")

    # --- inputs ---
    def _on_joints(self, msg: JointState) -> None:
        try:
            q = order_joints(msg.name, msg.position, self.joint_names)
            v = order_joints(msg.name, msg.velocity, self.joint_names) if msg.velocity else np.zeros_like(q)
        except JointStateError as err:
            self.get_logger().warning(f"ignored joint state: {err}", throttle_duration_sec=1.0)
            return
        self.pairer.update(pairing.SOURCE_JOINTS, (q, v), conv.time_seconds(msg.header.stamp), time.monotonic())

    def _on_image(self, msg: Image) -> None:
        try:
            rgb = conv.image_array(msg)
        except ValueError as err:
            self.get_logger().warning(f"ignored image: {err}", throttle_duration_sec=1.0)
            return
        self.pairer.update(pairing.SOURCE_IMAGE, rgb, conv.time_seconds(msg.header.stamp), time.monotonic())

    def _on_pose(self, msg: PoseStamped) -> None:
        self.pairer.update(pairing.SOURCE_EE_POSE, conv.pose_array(msg),
                           conv.time_seconds(msg.header.stamp), time.monotonic())

    def _on_env_state(self, msg: Float32MultiArray) -> None:
        # no header: stamped with the latest joint state's stamp so it pairs by age alone
        joints = self.pairer.latest(pairing.SOURCE_JOINTS)
        self.pairer.update(pairing.SOURCE_ENV_STATE, np.asarray(msg.data, np.float32),
                           joints.stamp if joints else 0.0, time.monotonic())

    def _on_reset(self, request, response):
        if self.loop is None:
            response.success, response.message = False, f"not connected: {self.connector.reason}"
            return response
        self.loop.reset()
        self.pairer.clear()
        self._last_stamp = -np.inf
        self.resets += 1
        response.success, response.message = True, "new episode: waiting for fresh observations"
        return response

    # --- control tick ---
    def _tick(self) -> None:
        if self.loop is None and not self._connected():
            return
        now = time.monotonic()
        try:
            values, stamp = self.pairer.pair(now)
            if self.p["lockstep"] and stamp <= self._last_stamp:
                return  # the sim has not stepped since the last action: wait for its state
            obs = pairing.build_observation(self.metadata, values, self.p["instruction"],
                                            self.p["camera_name"], self.profile.finger_open_width)
        except pairing.StaleObservation as stale:
            obs, stamp = stale, None
        subscribers = self.action_pub.get_subscription_count()
        if self.p["lockstep"] and subscribers < self.p["lockstep_min_subscribers"]:
            obs = pairing.StaleObservation(f"{subscribers} of {self.p['lockstep_min_subscribers']} "
                                           f"subscribers on {self.action_pub.topic_name} yet")
        command = self.loop.tick(now, obs, tag=stamp)
        sent_at = None
        if command.action is not None:
            if not command.hold and stamp is not None:
                self._last_stamp = stamp
            self.action_pub.publish(conv.action_msg(command.action, stamp))
            sent_at = conv.time_seconds(self.get_clock().now().to_msg())
        new_chunk = self.loop.status.chunks_accepted != self._chunks_seen
        if command.reason != self._last_reason or new_chunk:
            self._chunks_seen = self.loop.status.chunks_accepted
            self._report(command, self.loop.status.chunk_tag if new_chunk else None, sent_at)

    def _connected(self) -> bool:
        """Before the server has answered: nothing is sent (robot_bridge's watchdog holds the arm,
        and no hold can know the gripper's last command yet); the connector's state is reported.
        Gives up (exit 2) only when no server answered within connect_timeout_s."""
        state = self.connector.poll()
        if state.metadata is not None:
            self._start_control(state.metadata)
            return True
        if state.gave_up:
            raise NodeConfigError(state.reason)
        if state.reason != self._last_reason:
            self._last_reason = state.reason
            if state.reason.startswith(AUTH_FAILED):
                self.get_logger().error(state.reason)
            self._publish_status({"holding": True, "connected": False, "reason": state.reason,
                                  "faults": 0, "actions_sent": 0, "holds_sent": 0,
                                  "obs_stamp": None, "command_stamp": None})
        return False

    def _report(self, command: ex.Command, obs_stamp: float | None, sent_at: float | None) -> None:
        """``~/status``; with a new chunk also ``obs_stamp`` (the sensor stamp of the observation it
        answered) and ``command_stamp`` (ROS time its first action was published), seconds."""
        self._last_reason = command.reason
        s = self.loop.status
        if command.hold and s.faults != self._faults_logged:  # once per fault, not per tick
            self._faults_logged = s.faults
            log = self.get_logger().error if command.reason.startswith(AUTH_FAILED) else \
                self.get_logger().warning
            log(f"holding: {command.reason}")
        elif not command.hold and command.reason != self._logged_reason:
            self.get_logger().info("executing policy actions")
        self._logged_reason = command.reason
        self._publish_status({
            "holding": command.hold, "connected": True, "reason": command.reason,
            "faults": s.faults, "actions_sent": s.actions_sent, "holds_sent": s.holds_sent,
            "resets": self.resets, "obs_stamp": obs_stamp, "command_stamp": sent_at})

    def _publish_status(self, status: dict) -> None:
        self._status = status
        self.status_pub.publish(String(data=json.dumps(status)))

    def _republish_status(self) -> None:
        """The latest status again, without the per-chunk stamps (they belong to one event)."""
        if self._status:
            status = {**self._status, "obs_stamp": None, "command_stamp": None}
            if self.loop is not None:
                s = self.loop.status
                status.update(faults=s.faults, actions_sent=s.actions_sent, holds_sent=s.holds_sent,
                              resets=self.resets)
            self.status_pub.publish(String(data=json.dumps(status)))

    def close(self) -> None:
        self.connector.stop()
        self.client.close()


class ConnectorState(NamedTuple):
    metadata: PolicyMetadata | None
    reason: str
    gave_up: bool


class Connector:
    """Asks the server for its metadata on a thread of its own (a connect blocks up to its timeout;
    the node's ticks and services go on meanwhile). Unreachable: asked again every
    ``retry_period_s`` until ``connect_timeout_s``, then given up. Token refused (401/403):
    "authentication failed", asked again every ``auth_retry_period_s``, never given up."""

    def __init__(self, client: PolicyClient, url: str, connect_timeout_s: float,
                 retry_period_s: float, auth_retry_period_s: float):
        self.client, self.url = client, url
        self.connect_timeout_s = connect_timeout_s
        self.retry_period_s, self.auth_retry_period_s = retry_period_s, auth_retry_period_s
        self._state = ConnectorState(None, f"connecting: waiting for the policy server at {url}", False)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="policy_connector", daemon=True)
        self._thread.start()

    @property
    def reason(self) -> str:
        return self.poll().reason

    def poll(self) -> ConnectorState:
        with self._lock:
            return self._state

    def _set(self, **changes) -> None:
        with self._lock:
            self._state = self._state._replace(**changes)

    def _run(self) -> None:
        deadline = time.monotonic() + self.connect_timeout_s
        while not self._stop.is_set():
            try:
                metadata = self.client.connect()
            except PolicyAuthError as err:
                self._set(reason=f"{AUTH_FAILED} (HTTP {err.status}) at {self.url}: {err.detail}; "
                                 f"set the policy_client token parameter or ${TOKEN_ENV} to the "
                                 f"server's token; asking again every {self.auth_retry_period_s:g} s")
                self._stop.wait(self.auth_retry_period_s)
                continue
            except PolicyServerError as err:
                if time.monotonic() > deadline:
                    self._set(gave_up=True, reason=f"no policy server at {self.url} within "
                                                   f"connect_timeout_s = {self.connect_timeout_s:g}: {err}")
                    return
                self._set(reason=f"connecting: no policy server at {self.url} yet ({err})")
                self._stop.wait(self.retry_period_s)
                continue
            self._set(metadata=metadata, reason="connected")
            return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)


def main(args=None) -> int:
    return run_node(PolicyClientNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
