"""Reads the routes and handlers out of the SAM template, as `sam local start-api` does."""

from __future__ import annotations

import functools
import importlib.util
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

LambdaHandler = Callable[[dict[str, Any], Any], Any]


class _CloudFormationLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsics (`!Ref X` -> {"Ref": "X"})."""


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CloudFormationLoader.add_multi_constructor("!", _intrinsic)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: str
    pattern: re.Pattern[str]
    parameters: tuple[str, ...]

    @functools.cached_property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class Function:
    logical_id: str
    code_dir: Path
    handler: str
    """`module.attribute`, from the image's command (`ImageConfig.Command`)."""
    timeout: int
    memory: int


@dataclass(frozen=True)
class Application:
    functions: dict[str, Function]
    routes: list[Route]

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route for a request, as API Gateway picks it: exact paths before greedy ones."""
        for route in self.routes:
            if route.method not in (method, "ANY"):
                continue
            found = route.pattern.fullmatch(path)
            if found:
                return route, {name: found.group(name) for name in route.parameters}
        return None


def load_template(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as file:
        document = yaml.load(file, Loader=_CloudFormationLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(document, dict):
        raise ValueError(f"{path} is not a CloudFormation template")
    return document


def read_application(template_path: Path) -> Application:
    """Every function with HttpApi events, and every route, from a SAM template."""
    template = load_template(template_path)
    root = template_path.parent
    globals_ = (template.get("Globals") or {}).get("Function") or {}
    functions: dict[str, Function] = {}
    routes: list[Route] = []
    for logical_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource.get("Properties") or {}
        function = Function(
            logical_id=logical_id,
            code_dir=root / _code_dir(logical_id, resource),
            handler=_handler(logical_id, properties),
            timeout=_int(properties.get("Timeout", globals_.get("Timeout")), 3),
            memory=_int(properties.get("MemorySize", globals_.get("MemorySize")), 128),
        )
        for event in (properties.get("Events") or {}).values():
            if event.get("Type") != "HttpApi":
                continue
            event_properties = event.get("Properties") or {}
            functions[logical_id] = function
            routes.append(_route(event_properties["Method"], event_properties["Path"], logical_id))
    # API Gateway prefers the most specific route: literal paths before parameters, greedy last.
    routes.sort(key=lambda route: (route.path.count("+}"), route.path.count("{"), -len(route.path)))
    return Application(functions=functions, routes=routes)


def _code_dir(logical_id: str, resource: dict[str, Any]) -> str:
    metadata = resource.get("Metadata") or {}
    build_args = metadata.get("DockerBuildArgs") or {}
    if "FUNCTION" in build_args:
        return f"functions/{build_args['FUNCTION']}"
    code_uri = (resource.get("Properties") or {}).get("CodeUri")
    if isinstance(code_uri, str):
        return code_uri
    raise ValueError(f"{logical_id}: neither Metadata.DockerBuildArgs.FUNCTION nor CodeUri")


def _handler(logical_id: str, properties: dict[str, Any]) -> str:
    command = (properties.get("ImageConfig") or {}).get("Command")
    if isinstance(command, list) and command:
        return str(command[0])
    if isinstance(properties.get("Handler"), str):
        return str(properties["Handler"])
    raise ValueError(f"{logical_id}: neither ImageConfig.Command nor Handler")


def _route(method: str, path: str, function: str) -> Route:
    parameters: list[str] = []
    pattern = ""
    for piece in re.split(r"(\{[^}]+\})", path):
        if piece.startswith("{") and piece.endswith("}"):
            name = piece[1:-1]
            greedy = name.endswith("+")
            name = name.rstrip("+")
            parameters.append(name)
            pattern += f"(?P<{name}>.+)" if greedy else f"(?P<{name}>[^/]+)"
        else:
            pattern += re.escape(piece)
    return Route(
        method=method.upper(),
        path=path,
        function=function,
        pattern=re.compile(pattern),
        parameters=tuple(parameters),
    )


def _int(value: Any, default: int) -> int:
    """A literal number, or `default` where the template computes the value (`!Ref ...`)."""
    return value if isinstance(value, int) else default


def load_handler(function: Function) -> LambdaHandler:
    """Import the function's handler module from its code folder, under a name of its own."""
    module_name, _, attribute = function.handler.rpartition(".")
    source = function.code_dir / (module_name.replace(".", "/") + ".py")
    unique = f"_localapi_{function.logical_id}_{module_name.replace('.', '_')}"
    module = sys.modules.get(unique) or _import_file(unique, source)
    handler: LambdaHandler = getattr(module, attribute)
    return handler


def _import_file(name: str, source: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, source)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {source}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
