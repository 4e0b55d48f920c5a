"""Names of a deployment's state machine and schedule rule: the stage's prefix, AWS's limits."""

from __future__ import annotations

import pytest

from chalicelib import resource_names
from chalicelib.settings import Settings, SettingsError

DEV = "flowplane-dev"
LONGEST_PREFIX = "p" * 40
STAGE_ENV = {"FLOWPLANE_BUCKET": "b", "FLOWPLANE_TABLE": "t", "FLOWPLANE_JOB_QUEUE": "q", "FLOWPLANE_JOB_DEFINITION": "d"}


def test_names_carry_the_stage():
    assert resource_names.state_machine_name(DEV, "ParameterFlow") == "flowplane-dev-ParameterFlow"
    assert resource_names.rule_name(DEV, "HourlyFlow") == "flowplane-dev-schedule-HourlyFlow"
    assert resource_names.state_machine_name("flowplane-prod", "ParameterFlow") != resource_names.state_machine_name(DEV, "ParameterFlow")


@pytest.mark.parametrize("prefix", [DEV, LONGEST_PREFIX])
def test_a_state_machine_name_at_and_past_80_characters(prefix):
    fits = "a" * (resource_names.STATE_MACHINE_MAX - len(prefix) - 2)  # 79 characters in all
    assert resource_names.state_machine_name(prefix, fits) == f"{prefix}-{fits}"
    assert resource_names.deployment_of(prefix, resource_names.state_machine_name(prefix, fits)) == fits
    for longer in (fits + "b", "x" * 80, "x" * 79 + "y"):
        machine = resource_names.state_machine_name(prefix, longer)
        assert len(machine) == resource_names.STATE_MACHINE_MAX and machine.startswith(prefix + "-")
        assert resource_names.shortened(machine) and resource_names.is_ours(prefix, machine)
        # Only the table knows which deployment a shortened name stands for.
        assert resource_names.deployment_of(prefix, machine) is None
    # The hash keeps names that share their first 70 characters apart.
    assert resource_names.state_machine_name(prefix, "x" * 80) != resource_names.state_machine_name(prefix, "x" * 79 + "y")


@pytest.mark.parametrize("prefix", [DEV, LONGEST_PREFIX])
def test_a_rule_name_at_and_past_64_characters(prefix):
    room = resource_names.RULE_MAX - len(prefix) - len("-schedule-") - 1
    fits = "a" * room
    assert resource_names.rule_name(prefix, fits) == f"{prefix}-schedule-{fits}" and len(resource_names.rule_name(prefix, fits)) == 63
    for longer in (fits + "b", "Z" * 80):
        rule = resource_names.rule_name(prefix, longer)
        assert len(rule) == resource_names.RULE_MAX and rule.startswith(f"{prefix}-schedule-"[: resource_names.RULE_MAX - 9])
    assert resource_names.rule_name(prefix, "Z" * 80) != resource_names.rule_name(prefix, "Z" * 79 + "Y")


def test_another_stages_state_machines_are_not_ours():
    assert resource_names.is_ours(DEV, "flowplane-dev-F")
    for machine in ("flowplane-prod-F", "flowplane-devF", "flowplane-dev-", "F", "flowplane-F"):
        assert not resource_names.is_ours(DEV, machine) and resource_names.deployment_of(DEV, machine) is None


def test_the_prefix_is_the_stages_unless_set_and_must_leave_room():
    assert Settings.from_env({**STAGE_ENV, "FLOWPLANE_STAGE": "prod"}).resource_prefix == "flowplane-prod"
    stack = {**STAGE_ENV, "FLOWPLANE_STAGE": "dev", "FLOWPLANE_RESOURCE_PREFIX": "ml-platform-dev"}
    assert Settings.from_env(stack).resource_prefix == "ml-platform-dev"
    with pytest.raises(SettingsError, match="FLOWPLANE_RESOURCE_PREFIX"):
        Settings.from_env({**STAGE_ENV, "FLOWPLANE_RESOURCE_PREFIX": "p" * 41})
    with pytest.raises(SettingsError, match="choose a shorter stage name or set FLOWPLANE_RESOURCE_PREFIX"):
        Settings.from_env({**STAGE_ENV, "FLOWPLANE_STAGE": "s" * 31})
