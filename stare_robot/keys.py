"""Every key name used across the project, named once.

Episode arrays (Zarr paths inside one episode group), observation dict keys (what a policy's
``predict`` receives), episode/store attributes and stage-engine field names all come from here.
Other modules import these constants instead of spelling the strings again.

Shapes below: T = steps in an episode, H/W image size, J = robot joints, A = action dimension.
Poses are 7-D ``[x, y, z, qw, qx, qy, qz]`` in the world frame (metres, unit quaternion wxyz).
"""

from __future__ import annotations

# --- per-step observation arrays (also the keys of the observation dict given to a policy) ---
OBS = "obs"
OBS_STATE = "obs/state"  # (T, S) float32 proprioception: joint positions then joint velocities
OBS_JOINT_POS = "obs/joint_pos"  # (T, J) float32 robot joint configuration (StaKe keyframe target)
OBS_EE_POSE = "obs/ee_pose"  # (T, 7) float32 end-effector (TCP) pose, world frame
OBS_GRIPPER = "obs/gripper"  # (T, 1) float32 gripper opening, 0 = closed .. 1 = fully open
OBS_ENV_STATE = "obs/env_state"  # (T, E) float32 simulator's flat state vector (state mode only)
INSTRUCTION = "instruction"  # str, observation-dict key for the language instruction


def obs_rgb(camera: str) -> str:
    """(T, H, W, 3) uint8 colour image of ``camera``."""
    return f"{OBS}/{camera}/rgb"


def obs_depth(camera: str) -> str:
    """(T, H, W) uint16 depth image of ``camera`` in millimetres."""
    return f"{OBS}/{camera}/depth"


def is_rgb(key: str) -> bool:
    """True for a colour-image key made by :func:`obs_rgb`."""
    return key.startswith(OBS + "/") and key.endswith("/rgb")


def is_image(key: str) -> bool:
    """True for a colour or depth image key (:func:`obs_rgb`, :func:`obs_depth`)."""
    return key.startswith(OBS + "/") and key.endswith(("/rgb", "/depth"))


DEFAULT_CAMERA = "base_camera"  # ManiSkill3's tabletop camera name

# --- per-step action / label arrays ---
ACTION = "action"  # (T, A) float32 commanded action (A = 7: dxyz, drot axis-angle, gripper)
STAGE = "stage"  # (T,) int16 stage index from the stage engine
TIMESTAMP = "timestamp"  # (T,) float64 seconds since episode start
REWARD = "reward"  # (T,) float32 environment reward after the step (optional)

# --- training batch (policy.training_losses): the obs keys above with a batch axis, plus ---
# "action" is the (B, chunk, A) action chunk, normalised by the policy's processor
ACTION_IS_PAD = "action_is_pad"  # (B, chunk) bool, chunk steps past the episode end
STAGE_LABEL = "stage_label"  # (B,) float StaKe stage label, 0 = motion, 1 = skill
KEYFRAME_TARGET = "keyframe_target"  # (B, J+1) float joint config (+ gripper) at the next keyframe

# --- names of the scalar losses returned by policy.training_losses ---
LOSS = "loss"  # the total that is back-propagated
LOSS_ACTION = "action_loss"  # flow-matching MSE or action-token cross-entropy
LOSS_STAGE = "stage_loss"  # StaKe stage BCE
LOSS_KEYFRAME = "keyframe_loss"  # StaKe keyframe L1

# --- privileged simulator state (never given to an rgb-mode policy; used by STARE) ---
SIM = "sim"
SIM_OBJ_POSE = "sim/obj_pose"  # (T, 7) the manipulated object (cube, peg)
SIM_GOAL_POS = "sim/goal_pos"  # (T, 3) where the object should end up (NaN when none)
SIM_TARGET_POSE = "sim/target_pose"  # (T, 7) second object, e.g. the lower cube in a stack
SIM_IS_GRASPED = "sim/is_grasped"  # (T,) bool the gripper holds the object
SIM_CONTACT = "sim/contact"  # (T,) bool the robot (hand or fingers) touches the object
SIM_SUCCESS = "sim/success"  # (T,) bool the task's success predicate after the step
SIM_OBJ_HALF_SIZE = "obj_half_size"  # attr: float, object half extent along z (metres)

# --- sampling policy records (rollouts collected for TPO / PPO; sim/collect.py) ---
POLICY = "policy"
POLICY_QUERY_STEP = "policy/query_step"  # (T,) int32 step whose observation produced this action
POLICY_SAMPLE = "policy/sample"  # (T, ...) float32 what the action's log-likelihood needs, from
# the query that produced it: the normalised chunk (chunk, A) for the token head, the denoising
# chain (N+1, chunk, max_A) for the flow head (stare_robot.policies.pi0.likelihood_pi0)
ATTR_POLICY_CKPT = "policy_checkpoint"  # str, checkpoint that collected a rollout
ATTR_POLICY_TYPE = "policy_type"  # str, "pi0" | "pi0_tokens"
ATTR_CHAIN_NOISE_STD = "chain_noise_std"  # float, sigma of the flow head's noisy sampler
ATTR_EXECUTE_STEPS = "execute_steps"  # int, actions executed per predicted chunk

# --- episode attributes ---
ATTR_TASK = "task"  # friendly task name, e.g. "PushCube-v1"
ATTR_ENV_ID = "env_id"  # simulator env id (sim only)
ATTR_INSTRUCTION = "instruction"
ATTR_ROBOT = "robot"  # "panda", "widowx250s", ...
ATTR_SOURCE = "source"  # "sim" | "real"
ATTR_SUCCESS = "success"  # bool
ATTR_SEED = "seed"  # int, the env reset seed (sim) so the episode can be replayed
ATTR_OBS_MODE = "obs_mode"  # "state" | "rgb"
ATTR_STAGE_FAMILY = "stage_family"  # e.g. "push_pull"
ATTR_STAGE_NAMES = "stage_names"  # list[str]
ATTR_KEYFRAMES = "keyframes"  # list[int] gripper-transition step indices
ATTR_CONTROL_RATE = "control_rate_hz"  # float
ATTR_ACTION_SPACE = "action_space"  # e.g. "pd_ee_delta_pose"
ATTR_CODE_VERSION = "code_version"  # stare-robot version that wrote it
ATTR_NUM_STEPS = "num_steps"  # int, written at commit

# --- store-level attributes ---
STORE_SCHEMA_VERSION = "stare_schema_version"
STORE_FORMAT = "stare_format"  # always "stare-robot-episodes"

# --- action space ---
ACTION_SPACE_EE_DELTA = "pd_ee_delta_pose"
ACTION_DIM = 7
# label of the first layout dimension of a ROS action message (std_msgs/Float64MultiArray):
# "<ACTION_STAMP_LABEL>=<seconds, Python float repr>" names the joint-state stamp the action
# followed, so the episode recorder gives each action to its frame by stamp, not arrival order
ACTION_STAMP_LABEL = "after_stamp"
GRIPPER_OPEN = 1.0  # action[6] convention: +1 open, -1 close (ManiSkill's)
GRIPPER_CLOSED = -1.0

# --- inference wire protocol (server <-> client; field names of /v1/act and /v1/stream) ---
WIRE_OBSERVATION = "observation"  # request envelope: the observation dict (keys as above)
WIRE_REQUEST_ID = "request_id"  # str, echoed back; the server makes one when absent
WIRE_ACTIONS = "actions"  # response: float32 (chunk_size, action_dim) action chunk
WIRE_TIMING = "server_timing"  # response: dict of the timings below (openpi's name for it)
TIMING_QUEUE_MS = "queue_ms"  # waited for the inference worker (incl. micro-batching)
TIMING_INFERENCE_MS = "inference_ms"  # the policy call (whole batch)
TIMING_TOTAL_MS = "total_ms"  # request received -> answer ready, inside the server
TIMING_BATCH_SIZE = "batch_size"  # how many requests shared that policy call
