"""botocore's ``rolesanywhere`` service model as the contract: routes, input parsing and validation.

The model is read at start-up, so routes, HTTP status codes and constraints follow the botocore
version installed next to the endpoint instead of a hand-written copy.
"""
import base64
import binascii
import json
import re
from urllib.parse import unquote

from botocore.loaders import Loader

from ra_local.errors import ValidationError

SERVICE = "rolesanywhere"
CONSTRAINT = "failed to satisfy constraint: Member must"


class Operation:
    def __init__(self, name, spec, shapes):
        self.name = name
        self.method = spec["http"]["method"]
        self.status = spec["http"].get("responseCode", 200)
        self.input_shape = spec.get("input", {}).get("shape")
        template = spec["http"]["requestUri"].split("?")[0]
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", re.escape(template).replace(r"\{", "{").replace(r"\}", "}"))
        self.path_regex = re.compile(pattern + "$")
        self._shapes = shapes

    def parse(self, path_params, query, body):
        """Request parts → the operation's input parameters (not yet validated)."""
        params = {}
        if not self.input_shape:
            return params
        shape = self._shapes[self.input_shape]
        document = {}
        if body.strip():
            try:
                document = json.loads(body)
            except ValueError as exc:
                raise ValidationError(f"Request body is not valid JSON: {exc}") from None
            if not isinstance(document, dict):
                raise ValidationError("Request body must be a JSON object")
        for name, member in shape.get("members", {}).items():
            location = member.get("location")
            wire_name = member.get("locationName", name)
            if location == "uri":
                params[name] = unquote(path_params[wire_name])
            elif location == "querystring":
                values = query.get(wire_name)
                if values:
                    params[name] = self._query_value(self._shapes[member["shape"]], wire_name, values)
            elif location is None and name in document:
                params[name] = document[name]
        return params

    @staticmethod
    def _query_value(shape, wire_name, values):
        if shape["type"] == "list":
            return list(values)
        if shape["type"] == "integer":
            try:
                return int(values[0])
            except ValueError:
                raise ValidationError(f"Value '{values[0]}' at '{wire_name}' must be an integer") from None
        if shape["type"] == "boolean":
            return values[0].lower() == "true"
        return values[0]

    def validate(self, params):
        if not self.input_shape:
            return
        problems = []
        _validate(self._shapes, params, self.input_shape, "", problems)
        if problems:
            raise ValidationError(
                f"{len(problems)} validation error{'s' if len(problems) > 1 else ''} detected: " + "; ".join(problems)
            )


def _validate(shapes, value, shape_name, path, problems):
    shape = shapes[shape_name]
    kind = shape["type"]
    where = path or "request"
    if kind == "structure":
        if not isinstance(value, dict):
            problems.append(f"Value at '{where}' must be an object")
            return
        members = shape.get("members", {})
        for required in shape.get("required", []):
            if value.get(required) is None:
                problems.append(f"Value null at '{_join(path, required)}' failed to satisfy constraint: Member must not be null")
        present = [name for name in members if value.get(name) is not None]
        if shape.get("union") and len(present) != 1:
            problems.append(f"Value at '{where}' must set exactly one of {', '.join(members)}")
        for name in present:
            _validate(shapes, value[name], members[name]["shape"], _join(path, name), problems)
    elif kind == "list":
        if not isinstance(value, list):
            problems.append(f"Value at '{where}' must be a list")
            return
        _check_length(shape, len(value), value, where, problems)
        for index, item in enumerate(value):
            _validate(shapes, item, shape["member"]["shape"], f"{where}.{index + 1}.member", problems)
    elif kind == "map":
        if not isinstance(value, dict):
            problems.append(f"Value at '{where}' must be a map")
            return
        _check_length(shape, len(value), value, where, problems)
        for key, item in value.items():
            _validate(shapes, key, shape["key"]["shape"], f"{where}.key", problems)
            _validate(shapes, item, shape["value"]["shape"], f"{where}.{key}", problems)
    elif kind == "string":
        if not isinstance(value, str):
            problems.append(f"Value at '{where}' must be a string")
            return
        _check_length(shape, len(value), value, where, problems)
        if "enum" in shape and value not in shape["enum"]:
            problems.append(
                f"Value '{value}' at '{where}' failed to satisfy constraint: "
                f"Member must satisfy enum value set: [{', '.join(shape['enum'])}]"
            )
        if "pattern" in shape and not re.fullmatch(shape["pattern"], value):
            problems.append(
                f"Value '{value}' at '{where}' failed to satisfy constraint: "
                f"Member must satisfy regular expression pattern: {shape['pattern']}"
            )
    elif kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"Value at '{where}' must be an integer")
            return
        if "min" in shape and value < shape["min"]:
            problems.append(f"Value '{value}' at '{where}' {CONSTRAINT} have value greater than or equal to {shape['min']}")
        if "max" in shape and value > shape["max"]:
            problems.append(f"Value '{value}' at '{where}' {CONSTRAINT} have value less than or equal to {shape['max']}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            problems.append(f"Value at '{where}' must be a boolean")
    elif kind == "blob":
        try:
            decoded = base64.b64decode(value, validate=True) if isinstance(value, str) else None
        except (binascii.Error, ValueError):
            decoded = None
        if decoded is None:
            problems.append(f"Value at '{where}' must be base64-encoded bytes")
            return
        _check_length(shape, len(decoded), "<blob>", where, problems)


def _check_length(shape, length, value, where, problems):
    if "min" in shape and length < shape["min"]:
        problems.append(f"Value '{value}' at '{where}' {CONSTRAINT} have length greater than or equal to {shape['min']}")
    if "max" in shape and length > shape["max"]:
        problems.append(f"Value at '{where}' {CONSTRAINT} have length less than or equal to {shape['max']}")


def _join(path, name):
    return f"{path}.{name}" if path else name


class ServiceModel:
    def __init__(self):
        raw = Loader().load_service_model(SERVICE, "service-2")
        self.shapes = raw["shapes"]
        self.operations = {name: Operation(name, spec, self.shapes) for name, spec in raw["operations"].items()}

    def route(self, method, path):
        """(operation, path parameters) for a request, or (None, None)."""
        for operation in self.operations.values():
            if operation.method != method:
                continue
            match = operation.path_regex.match(path)
            if match:
                return operation, match.groupdict()
        return None, None
