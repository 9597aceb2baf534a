"""The calculator: costs and potentials against hand-computed values, [0, 1] bounds, telescoping
shaping, zero cost for a perfect stage, stage masks and conditional stage success."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stage_synthetic import BUILDERS, random_trajectory

from stare_robot import keys, stages


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def closeness(d: float, scale: float) -> float:
    return sig(1 - d / scale) / sig(1)


# --- hand-computed costs -----------------------------------------------------------------------


def test_pick_place_costs_by_hand():
    traj, _ = BUILDERS["pick_place"]()
    traj[keys.SIM_OBJ_POSE][6, 0] += 0.03  # 3 cm off the straight transport line at step 6
    costs = stages.stage_costs("pick_place", traj)[0]
    reach = 0.04 - 0.02  # TCP 4 cm above the cube when reach ends, minus the 2 cm tolerance
    grasp = (0.04 + 0.0) / 2  # d_ee_obj 0 at steps 3-4; the cube moved 4 cm relative to the TCP at 3
    # transport steps 5, 6, 7: only step 6 leaves the line from (0.1, 0, 0.04) to the goal
    transport = (0 + 0.03 + 0) / 3
    # place steps 8-11 (fewer than M = 5): per-step cube motion 0.0626, 0.0418, 0, 0
    place = (math.hypot(0.06, 0.018) + math.hypot(0.04, 0.012)) / 4
    np.testing.assert_allclose(costs, [reach, grasp, transport, place], atol=1e-9)


def test_stack_costs_by_hand():
    traj, _ = BUILDERS["stack"]()
    costs = stages.stage_costs("stack", traj)[0]
    reach = 0.06 - 0.02  # TCP at (0, 0, 0.08) vs cube at (0, 0, 0.02) when reach ends (step 1)
    grasp = (0.0 + 0.06) / 1  # step 2: TCP on the cube, which moved 6 cm relative to the TCP
    # transport steps 3-4 on the line from A's stage-start (0, 0, 0.05) to the goal (0, 0.1, 0.06):
    # step 4 at (0, 0.05, 0.08) projects at s = (0.05*0.1 + 0.03*0.01) / (0.1^2 + 0.01^2)
    d = np.array([0, 0.05, 0.03]) - np.array([0, 0.1, 0.01]) * (0.0053 / 0.0101)
    transport = (0 + np.linalg.norm(d)) / 2
    place = (math.hypot(0.04, 0.01) + math.hypot(0.01, 0.01) + 0 + 0) / 4  # steps 5-8
    np.testing.assert_allclose(costs, [reach, grasp, transport, place], atol=1e-9)


def test_push_pull_costs_by_hand():
    traj, _ = BUILDERS["push_pull"]()
    traj[keys.OBS_EE_POSE][3, 1] = 0.01  # TCP 1 cm to the side at step 3 (still at the face)
    costs = stages.stage_costs("push_pull", traj)[0]
    reach = 0.08 - 0.05  # 8 cm from the push point when reach ends (step 1), minus contact_distance
    contact = (0.0 + 0.01 + 0.0) / 3  # at the contact all three steps; lateral offset 0, 1 cm, 0
    push = (0.12 - 0.1) + 0.0  # 2 cm short of the goal region at the last push step; no drift
    goal = ((0.09 + 0.03) + (0.09 + 0.0)) / 2  # distance to goal + per-step motion, steps 8-9
    np.testing.assert_allclose(costs, [reach, contact, push, goal], atol=1e-9)


def test_lift_upright_costs_by_hand():
    traj, _ = BUILDERS["lift_upright"]()
    short = {k: v[:7] for k, v in traj.items()}  # end at step 6: peg 0.05 rad off vertical
    costs = stages.stage_costs("lift_upright", short)[0]
    reach = 0.075 - 0.02  # TCP 7.5 cm above the peg axis when reach ends
    grasp = 0.0 + 0.075  # on the axis at step 2; the peg moved 7.5 cm relative to the TCP
    lift = 0.05 - 0.02  # the lift stage (step 3) ends 2 cm up, clearance is 5 cm
    upright = 0.05
    np.testing.assert_allclose(costs, [reach, grasp, lift, upright], atol=1e-9)


def test_gripper_costs_are_the_chatter_fraction():
    traj, _ = BUILDERS["gripper"]()
    costs = stages.stage_costs("gripper", traj)[0]
    # the raw state leads the debounced one by one step at each change (steps 4 and 10)
    np.testing.assert_allclose(costs, [1 / 5, 1 / 6, 0.0])


def test_unvisited_stages_cost_nan():
    traj, _ = BUILDERS["pick_place"]()
    short = {k: v[:4] for k, v in traj.items()}
    costs = stages.stage_costs("pick_place", short)[0]
    assert np.isfinite(costs[:2]).all() and np.isnan(costs[2:]).all()


# --- hand-computed potentials ------------------------------------------------------------------


def test_pick_place_potentials_by_hand():
    traj, _ = BUILDERS["pick_place"]()
    phi = stages.potentials("pick_place", traj)
    assert phi[0] == pytest.approx(closeness(0.18, 0.1) / 4)
    # step 4: grasp stage, grasped for 1 step: (1 + 0.5 tanh(1/5)) / 1.5
    assert phi[4] == pytest.approx((1 + (1 + 0.5 * math.tanh(0.2)) / 1.5) / 4)
    # step 6: transport, grasped, cube 0.1577 m from the goal: (closeness + 0.5) / 1.5
    d = math.dist([0.1, 0.05, 0.055], [0.1, 0.2, 0.1])
    assert phi[6] == pytest.approx((2 + (closeness(d, 0.1) + 0.5) / 1.5) / 4)
    assert phi[9] == pytest.approx(1.0)  # at the goal, flat: (1 + 0.5) / 1.5 in the last stage


def test_push_pull_and_lift_potentials_by_hand():
    traj, _ = BUILDERS["push_pull"]()
    phi = stages.potentials("push_pull", traj)
    assert phi[1] == pytest.approx(closeness(0.08, 0.1) / 4)  # 8 cm from the push point
    assert phi[4] == pytest.approx((1 + 1) / 4)  # contact stage, in contact
    assert phi[6] == pytest.approx((2 + closeness(0.15, 0.1)) / 4)
    assert phi[9] == pytest.approx(1.0)

    traj, _ = BUILDERS["lift_upright"]()
    phi = stages.potentials("lift_upright", traj)
    assert phi[2] == pytest.approx((1 + 1) / 4)  # grasped
    assert phi[3] == pytest.approx((2 + (2 * sig(0.02 / 0.05) - 1)) / 4)  # 2 cm up
    assert phi[5] == pytest.approx((3 + math.sin(math.pi / 4)) / 4)  # axis 45 degrees up


def test_gripper_potentials_by_hand():
    traj, _ = BUILDERS["gripper"]()
    phi = stages.potentials("gripper", traj)
    assert phi[0] == 0.0
    assert phi[5] == pytest.approx((1 + math.tanh(1 / 5)) / 3)  # first confirmed closed step
    assert phi[7] == pytest.approx((1 + math.tanh(3 / 5)) / 3)
    assert phi[12] == pytest.approx(1.0)


def test_stage_mask_turns_shaping_off_for_chosen_stages():
    traj, expected = BUILDERS["pick_place"]()
    full = stages.potentials("pick_place", traj)
    no_grasp = stages.potentials("pick_place", traj, mask={"grasp": False})
    # the grasp stage gives no signal: constant inside it, and finishing it earns nothing
    assert np.ptp(no_grasp[expected == 1]) == 0
    assert no_grasp[3] == pytest.approx(1 / 3)
    assert no_grasp[0] == pytest.approx(full[0] * 4 / 3)
    assert np.all(stages.potentials("pick_place", traj, mask=[False] * 4) == 0)
    with pytest.raises(ValueError, match="4 stages"):
        stages.potentials("pick_place", traj, mask=[True, False])
    with pytest.raises(ValueError, match="unknown stage"):
        stages.potentials("pick_place", traj, mask={"lift": False})


# --- properties --------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    family=st.sampled_from(sorted(BUILDERS)),
    mask_bits=st.integers(0, 15),
)
def test_potentials_lie_in_unit_interval(seed, family, mask_bits):
    rng = np.random.default_rng(seed)
    traj = random_trajectory(family, rng, int(rng.integers(1, 50)))
    k = stages.get_family(family).num_stages
    mask = [(mask_bits >> i) & 1 == 1 for i in range(k)]
    for m in (None, mask):
        phi = stages.potentials(family, traj, mask=m)
        assert np.all(np.isfinite(phi)) and np.all((phi >= 0) & (phi <= 1))
    for per_stage in stages.get_family(family).stage_potentials(
        stages.run_separator(family, traj).conditions
    ):
        assert np.all((per_stage >= 0) & (per_stage <= 1))


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    family=st.sampled_from(sorted(BUILDERS)),
    gamma=st.floats(0.5, 1.0),
)
def test_shaping_telescopes(seed, family, gamma):
    rng = np.random.default_rng(seed)
    traj = random_trajectory(family, rng, int(rng.integers(2, 50)))
    phi = stages.potentials(family, traj)  # T states -> T - 1 transitions
    steps = len(phi) - 1
    rewards = rng.normal(size=steps)
    shaped = stages.shaped_reward(rewards, phi, gamma)
    discount = gamma ** np.arange(steps)
    bonus = float(np.sum(discount * (shaped - rewards)))
    assert bonus == pytest.approx(gamma**steps * phi[-1] - phi[0], abs=1e-9)


def test_shaping_keeps_the_order_of_returns_between_same_start_and_end_potential():
    # two trajectories from the same start and ending with the same potential: shaping adds the
    # same constant to both returns, so the better one stays better (the optimal policy is kept)
    gamma = 0.99
    phi_a = np.array([0.1, 0.9, 0.2, 0.5])
    phi_b = np.array([0.1, 0.3, 0.4, 0.5])
    r_a, r_b = np.array([0.0, 0.0, 1.0]), np.array([0.5, 0.0, 0.0])
    ret = lambda r: float(np.sum(gamma ** np.arange(3) * r))
    shaped_a = ret(stages.shaped_reward(r_a, phi_a, gamma))
    shaped_b = ret(stages.shaped_reward(r_b, phi_b, gamma))
    assert shaped_a - shaped_b == pytest.approx(ret(r_a) - ret(r_b))
    with pytest.raises(ValueError, match="one more potential than rewards"):
        stages.shaped_reward(r_a, phi_a[:3], gamma)


@pytest.mark.parametrize(
    "family, stage, perturb",
    [
        # reach: TCP short of the cube when the reach ends (step 2), by e beyond the tolerance
        ("pick_place", 0, lambda t, e: t[keys.OBS_EE_POSE].__setitem__((2, 2), 0.04 + e)),
        # transport: cube e off the straight line at step 6
        ("pick_place", 2, lambda t, e: t[keys.SIM_OBJ_POSE].__setitem__((6, 0), 0.1 + e)),
        # contact: TCP e to the side of the push line at step 4
        ("push_pull", 1, lambda t, e: t[keys.OBS_EE_POSE].__setitem__((4, 1), e)),
        # upright: the standing peg is e radians off vertical at the end
        ("lift_upright", 3, lambda t, e: t[keys.SIM_OBJ_POSE].__setitem__(
            (7, slice(3, 7)), [math.cos(-(math.pi / 2 - e) / 2), 0, math.sin(-(math.pi / 2 - e) / 2), 0])),
    ],
)
def test_cost_is_zero_for_a_perfect_stage_and_grows_with_error(family, stage, perturb):
    traj, expected = BUILDERS[family]()
    errors = [0.0, 0.005, 0.01, 0.02]
    totals = []
    for e in errors:
        t = {k: v.copy() for k, v in traj.items()}
        perturb(t, e)
        seg = stages.run_separator(family, t)
        assert np.array_equal(seg.stage, expected)  # the perturbation keeps the stages
        totals.append(stages.stage_costs(seg)[0])
    cost = np.array(totals)[:, stage]
    assert cost[0] == pytest.approx(0.0, abs=1e-12)
    assert np.all(np.diff(cost) > 0)


# --- conditional stage success -----------------------------------------------------------------


def test_conditional_stage_success_by_hand():
    names = ["reach", "grasp", "transport", "place"]
    furthest = [0, 1, 1, 2, 3, 3, 3, 3]
    success = [False, False, False, False, True, True, False, False]
    rows = stages.conditional_stage_success(furthest, names, success)
    got = {r.stage: (r.reached, r.given) for r in rows}
    assert got == {
        "reach": (8, 8), "grasp": (7, 8), "transport": (5, 7), "place": (4, 5), "success": (2, 4),
    }
    assert rows[2].probability == pytest.approx(5 / 7)
    empty = stages.conditional_stage_success([0, 0], names)
    assert math.isnan(empty[2].probability) and len(empty) == 4
    with pytest.raises(ValueError, match="0..3"):
        stages.conditional_stage_success([4], names)


def test_stage_sigmoid_equals_the_logistic_and_never_overflows():
    import warnings

    from stare_robot.stages import geometry as geo

    x = np.linspace(-30, 30, 601)
    np.testing.assert_allclose(geo.sigmoid(x), 1.0 / (1.0 + np.exp(-x)), rtol=1e-12, atol=1e-15)
    far = np.array([-1e4, -200.0, 200.0], np.float32)  # exp(200) overflows float32
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = geo.sigmoid(far)
    np.testing.assert_allclose(out, [0.0, 0.0, 1.0], atol=1e-30)
    assert geo.closeness(np.array([1e6]), 0.01)[0] == 0.0
