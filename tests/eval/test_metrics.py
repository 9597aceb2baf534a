"""Evaluation metrics and reports against hand-computed values."""

from __future__ import annotations

import json

import pytest

from stare_robot.eval.metrics import (
    EpisodeOutcome,
    conditional_stage_success,
    summarize,
    wilson_interval,
)
from stare_robot.eval.report import write_report


def test_wilson_interval_known_values():
    # textbook values for the 95 % Wilson score interval
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson_interval(100, 100)
    assert hi == pytest.approx(1.0) and lo == pytest.approx(0.9630, abs=1e-4)


def test_conditional_stage_success_counts_only_episodes_that_reached_the_previous_stage():
    # furthest stage of 5 episodes over 4 stages
    rows = conditional_stage_success([0, 1, 1, 3, 2], 4)
    assert [(r["reached_prev"], r["reached"]) for r in rows] == [(5, 4), (4, 2), (2, 1)]
    assert [r["rate"] for r in rows] == [pytest.approx(0.8), pytest.approx(0.5), pytest.approx(0.5)]
    # nobody reached the previous stage: the rate is undefined, not 0
    assert conditional_stage_success([0, 0], 3)[1]["rate"] is None


def test_summarize_and_report(tmp_path):
    names = ["reach", "grasp", "transport", "place"]
    outcomes = [
        EpisodeOutcome(seed=0, success=True, length=20, furthest_stage=3, grasped=True),
        EpisodeOutcome(seed=1, success=False, length=30, furthest_stage=1, grasped=True),
        EpisodeOutcome(seed=2, success=False, length=30, furthest_stage=0, grasped=False),
        EpisodeOutcome(seed=3, success=False, length=30, furthest_stage=3, grasped=True),
    ]
    s = summarize(outcomes, names)
    assert s["success_rate"] == 0.25 and s["grasp_rate"] == 0.75 and s["mean_length"] == 27.5
    assert s["reached_fraction"] == [1.0, 0.75, 0.5, 0.5]
    assert s["success_given_last_stage"] == 0.5
    paths = write_report({"sft": s, "sft+tpo": s}, tmp_path, title="PushCube")
    assert json.loads(paths["json"].read_text())["sft"]["success_rate"] == 0.25
    md = paths["md"].read_text()
    assert "| sft | 4 | 25.0 |" in md and "P(place\\|prev)" in md
    assert paths["png"].stat().st_size > 1000
