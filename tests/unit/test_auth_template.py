"""The optional API Gateway JWT authorizer in template.yaml checks what the functions check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from localapi.template import load_template

TEMPLATE = load_template(Path(__file__).resolve().parents[2] / "template.yaml")


def resources_of_type(kind: str) -> list[dict[str, Any]]:
    return [r for r in TEMPLATE["Resources"].values() if r.get("Type") == kind]


def test_authorizer_is_off_unless_asked_for() -> None:
    parameter = TEMPLATE["Parameters"]["EnableApiGatewayJwtAuthorizer"]

    assert parameter["Default"] == "false"
    assert sorted(parameter["AllowedValues"]) == ["false", "true"]
    assert TEMPLATE["Conditions"]["UseApiGatewayJwtAuthorizer"] == {
        "Fn::Equals": [{"Ref": "EnableApiGatewayJwtAuthorizer"}, "true"]
    }
    # SAM cannot resolve an !If around Auth; the language extensions transform must run first
    assert TEMPLATE["Transform"][0] == "AWS::LanguageExtensions"


def test_authorizer_uses_the_functions_issuer_and_audience() -> None:
    (api,) = resources_of_type("AWS::Serverless::HttpApi")
    condition, enabled, disabled = api["Properties"]["Auth"]["Fn::If"]
    (authorizer,) = enabled["Authorizers"].values()
    environment = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]

    assert condition == "UseApiGatewayJwtAuthorizer"
    assert disabled == {"Ref": "AWS::NoValue"}
    assert enabled["DefaultAuthorizer"] in enabled["Authorizers"]
    assert authorizer["IdentitySource"] == "$request.header.Authorization"
    assert authorizer["JwtConfiguration"]["issuer"] == environment["OIDC_ISSUER"]
    assert authorizer["JwtConfiguration"]["audience"] == {
        "Fn::Split": [",", environment["OIDC_AUDIENCE"]]
    }


def test_health_stays_open_when_the_authorizer_is_on() -> None:
    events = [
        event
        for function in resources_of_type("AWS::Serverless::Function")
        for event in function["Properties"].get("Events", {}).values()
        if event["Properties"].get("Path") == "/health"
    ]

    (health,) = events
    assert health["Properties"]["Auth"] == {
        "Fn::If": [
            "UseApiGatewayJwtAuthorizer",
            {"Authorizer": "NONE"},
            {"Ref": "AWS::NoValue"},
        ]
    }
