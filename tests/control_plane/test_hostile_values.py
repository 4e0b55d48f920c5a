"""Values that cannot round-trip, nesting that exhausts a parser, and manifests that lie (issue 12).

Pure functions only (no AWS): the request-body parser, parameter conversion, the
package validation of the compile path. tests/control_plane/test_app_hostile.py drives the same
cases through the routes and the compile function.
"""

from __future__ import annotations

import json

import pytest

from chalicelib.errors import ApiError, BadRequest
from chalicelib.http import json_body
from chalicelib.deploy.package_check import validate_package
from chalicelib.runs.inputs import convert_parameters
from flowplane import jsonsafe
from flowplane.manifest import ParameterSpec
from flowplane.parameters import ParameterError, convert
from tests.support.hostile_packages import MB, PARAMETER_FLOW, manifest_of, package

FLOAT = [ParameterSpec(name="alpha", attribute="alpha", type="float", default=0.01, has_default=True)]
JSON = [ParameterSpec(name="config", attribute="config", type="json")]
DEEP = "[" * 100_000 + "]" * 100_000


def refused_body(raw: str) -> BadRequest:
    with pytest.raises(BadRequest) as e:
        json_body(raw)
    return e.value


# --- nesting --------------------------------------------------------------------------------------


def test_a_body_nested_100000_deep_is_a_400():
    e = refused_body('{"parameters": ' + DEEP + "}")
    assert e.field == "body" and "nested more than 64 levels" in e.message


def test_a_body_nested_past_64_but_within_pythons_reach_is_a_400_naming_where():
    e = refused_body('{"parameters": {"config": ' + "[" * 70 + "]" * 70 + "}}")
    assert e.field.startswith("parameters.config.0.0") and e.extra["parameter"] == "config"


def test_a_json_parameter_value_nested_100000_deep_is_refused_naming_it():
    with pytest.raises(BadRequest) as e:
        convert_parameters(JSON, {"config": DEEP})
    assert e.value.field == "parameters.config" and "nested more than 64" in e.value.message


# --- numbers that cannot round-trip ------------------------------------------------------------


@pytest.mark.parametrize("value", ["1e999", "-1e999", "nan", "NaN", "Infinity", "-inf", "1" * 5000, 1e308 * 10])
def test_non_finite_float_parameters_are_refused_naming_the_parameter(value):
    with pytest.raises(BadRequest) as e:
        convert_parameters(FLOAT, {"alpha": value})
    assert e.value.field == "parameters.alpha" and e.value.extra["parameter"] == "alpha"
    assert "finite" in e.value.message


@pytest.mark.parametrize("number", ["1e999", "NaN", "Infinity", "-Infinity", "1" * 5000])
def test_raw_numbers_json_cannot_carry_are_refused_where_they_stand(number):
    e = refused_body('{"parameters": {"alpha": ' + number + "}}")
    assert e.field == "parameters.alpha" and e.extra["parameter"] == "alpha"
    assert "not a number JSON can carry" in e.message


def test_a_5000_digit_integer_parameter_is_refused():
    with pytest.raises(ParameterError, match="not a valid int"):
        convert("int", "9" * 5000, "n")
    with pytest.raises(ParameterError, match="within"):
        convert("int", 2**64, "n")


def test_json_values_inside_a_json_parameter_are_held_to_the_same_rules():
    for text in ('{"a": NaN}', "[1e999]", '{"x": ' + "1" * 30 + "}"):
        with pytest.raises(ParameterError, match="not a number JSON can carry"):
            convert("json", text, "config")
    assert convert("json", '{"a": [1, 2.5, "x", null, true]}', "config") == {"a": [1, 2.5, "x", None, True]}


def test_what_is_accepted_round_trips_as_strict_json():
    value = convert_parameters(FLOAT + JSON, {"alpha": "0.5", "config": '{"k": [1, -2, 3.25e10]}'})
    assert json.loads(jsonsafe.dumps(value)) == value


# --- deeply nested flow source --------------------------------------------------------------------


@pytest.mark.parametrize("expression", ["-" * 100_000 + "1", "1" + "+1" * 200_000, "a" + ".b" * 100_000])
def test_flow_source_nested_past_the_parser_is_a_400(expression):
    source = PARAMETER_FLOW + f"\nX = {expression}\n".encode()
    with pytest.raises(BadRequest) as e:
        validate_package(package(source=source, manifest=manifest_of()), 50 * MB, 500 * MB)
    assert e.value.field == "flow_file" and "nests expressions too deeply" in e.value.message


# --- manifests that lie ------------------------------------------------------------------------------


def _with_default(value, **fields) -> bytes:
    m = manifest_of()
    p = m.parameters[0].model_copy(update={"default": value, **fields})
    return package(manifest=m.model_copy(update={"parameters": [p]}))


def _refused(data: bytes) -> ApiError:
    with pytest.raises(ApiError) as e:
        validate_package(data, 50 * MB, 500 * MB)
    return e.value


def test_a_default_that_is_not_a_number_for_a_float_parameter_is_refused():
    e = _refused(_with_default("not-a-number"))
    assert e.field == "parameters.alpha.default" and "not a valid float" in e.message and e.line


def test_a_default_other_than_the_sources_literal_is_refused():
    e = _refused(_with_default(999.0))
    assert e.field == "parameters.alpha.default" and "0.01 in the source, not to 999.0" in e.message


def test_a_default_of_the_wrong_json_type_is_refused_even_if_it_converts():
    # "0.01" would convert to 0.01, but the SDK writes the converted value: a string is a lie.
    e = _refused(_with_default("0.01"))
    assert e.field == "parameters.alpha.default" and "is not a float" in e.message


def test_a_literal_default_claimed_deploy_time_is_refused():
    e = _refused(_with_default(5.0, deploy_time=True))
    assert e.field == "parameters.alpha.deploy_time"


def test_a_deploy_time_default_must_be_valid_for_its_type():
    source = PARAMETER_FLOW.replace(b"default=0.01", b"default=lambda ctx: 0.5, type=float")
    m = manifest_of(source)
    p = m.parameters[0]
    assert p.deploy_time
    for bad in ("not-a-number", float("nan"), [1]):
        lying = m.model_copy(update={"parameters": [p.model_copy(update={"default": bad, "has_default": True})]})
        e = _refused(package(source=source, manifest=lying))
        assert e.field == "parameters.alpha.default", e.to_dict()
    good = m.model_copy(update={"parameters": [p.model_copy(update={"default": 0.5, "has_default": True})]})
    assert validate_package(package(source=source, manifest=good), 50 * MB, 500 * MB).manifest == good


def test_an_sdk_version_outside_the_supported_range_is_refused_with_the_range():
    m = manifest_of().model_copy(update={"flowplane_version": "99.0.0"})
    e = _refused(package(manifest=m))
    assert e.field == "flowplane_version" and e.extra["supported"] == ">=0.1.0,<0.2.0"
    assert ">=0.1.0,<0.2.0" in e.message


def test_a_manifest_listing_a_parameter_twice_is_refused():
    m = manifest_of()
    e = _refused(package(manifest=m.model_copy(update={"parameters": [m.parameters[0], m.parameters[0]]})))
    assert e.field == "parameters.alpha" and "twice" in e.message


def test_a_flow_file_path_that_is_not_normalised_is_refused():
    raw = json.loads(manifest_of().model_dump_json())
    raw["flow_file"] = "./parameter_flow.py"
    e = _refused(package(raw_manifest=json.dumps(raw).encode()))
    assert e.field == "manifest.flow_file"


def test_a_flow_class_name_run_records_cannot_key_is_refused():
    source = PARAMETER_FLOW.replace(b"ParameterFlow", b"Param\xc3\xa9terFlow")
    e = _refused(package(source=source, manifest=manifest_of(source)))
    assert e.field == "flow_name" and e.extra["limit"] == 128
