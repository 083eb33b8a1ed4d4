"""``.. openapi-reference:: path/to/openapi.yaml``: the REST API, from its OpenAPI document.

The service's tests check its answers against the same document, so rendering the page
from it keeps the docs, the tests and the server in step. It writes an overview table,
a section per operation (parameters and responses) and a section per schema, with
links from responses to schemas. Only the parts of OpenAPI 3.0 the document uses are
understood: local ``$ref`` s, objects, arrays, enums, nullable fields.

The directive must sit where sections may start, in a page whose title is underlined
with ``=`` and whose sections use ``-``; the generated sub-sections use ``~``.
"""

from __future__ import annotations

from typing import Any

import yaml
from docutils import nodes
from docutils.statemachine import StringList
from rst_text import escape, inline, literal, paragraphs
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


class Document:
    """The parsed OpenAPI document, with ``$ref`` resolution."""

    def __init__(self, data: dict[str, Any]):
        self.data = data

    def resolve(self, item: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in item:
            item = self.lookup(item["$ref"])
        return item

    def lookup(self, reference: str) -> dict[str, Any]:
        if not reference.startswith("#/"):
            raise ValueError(f"only local references are supported, not {reference}")
        node: Any = self.data
        for part in reference[2:].split("/"):
            node = node[part]
        return node

    def operations(self) -> list[tuple[str, str, dict[str, Any], list[dict[str, Any]]]]:
        """(method, path, operation, parameters) in the document's order."""
        found = []
        for path, item in self.data.get("paths", {}).items():
            shared = item.get("parameters", [])
            for method in METHODS:
                if method in item:
                    operation = item[method]
                    parameters = [self.resolve(p) for p in shared + operation.get("parameters", [])]
                    found.append((method.upper(), path, operation, parameters))
        return found


def schema_label(name: str) -> str:
    return f"openapi-schema-{name.lower()}"


def operation_label(operation: dict[str, Any], method: str, path: str) -> str:
    name = operation.get("operationId") or f"{method}{path}"
    return f"openapi-operation-{name.lower()}"


def schema_type(schema: dict[str, Any]) -> str:
    """A short reST description of a schema: a link for a named one."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f":ref:`{name} <{schema_label(name)}>`"
    kind = schema.get("type", "any")
    if kind == "array":
        text = f"array of {schema_type(schema.get('items', {}))}"
    elif "enum" in schema:
        text = "one of " + ", ".join(literal(str(value)) for value in schema["enum"])
    else:
        text = kind + (f" ({escape(schema['format'])})" if "format" in schema else "")
    if schema.get("pattern"):
        text += f", matching {literal(schema['pattern'])}"
    if schema.get("nullable"):
        text += ", or null"
    return text


def list_table(header: list[str], rows: list[list[str]], widths: str) -> list[str]:
    lines = [".. list-table::", "   :header-rows: 1", f"   :widths: {widths}", ""]
    for row in [header, *rows]:
        lines.append(f"   * - {row[0] or ' '}")
        lines.extend(f"     - {cell or ' '}" for cell in row[1:])
    return [*lines, ""]


def blocks(text: str | None) -> list[str]:
    """Paragraphs as reST lines, each followed by a blank line."""
    return [line for paragraph in paragraphs(text) for line in (paragraph, "")]


def section(title: str, underline: str, label: str | None = None) -> list[str]:
    lines = [f".. _{label}:", ""] if label else []
    return [*lines, title, underline * len(title), ""]


class Renderer:
    """Builds the reST of the whole reference from a :class:`Document`."""

    def __init__(self, document: Document):
        self.document = document
        self.default_security = document.data.get("security", [])

    def needs_token(self, operation: dict[str, Any]) -> bool:
        return bool(operation.get("security", self.default_security))

    def render(self) -> list[str]:
        lines = self.overview()
        lines += section("Authentication", "-") + self.authentication()
        lines += section("Operations", "-")
        for method, path, operation, parameters in self.document.operations():
            lines += self.operation(method, path, operation, parameters)
        lines += section("Schemas", "-")
        for name, schema in self.document.data.get("components", {}).get("schemas", {}).items():
            lines += self.schema(name, schema)
        return lines

    def overview(self) -> list[str]:
        info = self.document.data.get("info", {})
        lines = blocks(info.get("description"))
        rows = []
        for method, path, operation, _ in self.document.operations():
            link = f":ref:`{method} {escape(path)} <{operation_label(operation, method, path)}>`"
            token = "X-Auth-Token" if self.needs_token(operation) else "none"
            rows.append([link, inline(operation.get("summary", "")), token])
        return lines + list_table(["operation", "what it does", "token"], rows, "30 55 15")

    def authentication(self) -> list[str]:
        lines: list[str] = []
        schemes = self.document.data.get("components", {}).get("securitySchemes", {})
        for scheme in schemes.values():
            where = f"the {literal(scheme.get('name', ''))} {scheme.get('in', '')}"
            lines += [f"Callers send {where}. " + inline(scheme.get("description", "")), ""]
        return lines

    def operation(
        self, method: str, path: str, operation: dict[str, Any], parameters: list[dict[str, Any]]
    ) -> list[str]:
        title = literal(f"{method} {path}")
        lines = section(title, "~", operation_label(operation, method, path))
        lines += [inline(operation.get("summary", "")), ""]
        lines += blocks(operation.get("description"))
        if not self.needs_token(operation):
            lines += ["No token needed.", ""]
        if parameters:
            lines += [".. rubric:: Parameters", "", *self.parameters(parameters)]
        lines += [".. rubric:: Responses", "", *self.responses(operation)]
        return lines

    def parameters(self, parameters: list[dict[str, Any]]) -> list[str]:
        rows = [
            [
                literal(parameter["name"]),
                escape(parameter.get("in", "")),
                "yes" if parameter.get("required") else "no",
                schema_type(parameter.get("schema", {})),
                inline(parameter.get("description", "")),
            ]
            for parameter in parameters
        ]
        return list_table(["name", "in", "required", "type", "meaning"], rows, "15 10 10 15 50")

    def responses(self, operation: dict[str, Any]) -> list[str]:
        rows = []
        for status, response in operation.get("responses", {}).items():
            response = self.document.resolve(response)
            body = response.get("content", {}).get("application/json", {}).get("schema")
            rows.append(
                [
                    literal(str(status)),
                    inline(response.get("description", "")),
                    schema_type(body) if body else "empty",
                ]
            )
        return list_table(["status", "when", "body (JSON)"], rows, "10 60 30")

    def schema(self, name: str, schema: dict[str, Any]) -> list[str]:
        lines = section(literal(name), "~", schema_label(name))
        lines += blocks(schema.get("description"))
        properties = schema.get("properties", {})
        if not properties:
            return [*lines, f"A value of type {schema_type(schema)}.", ""]
        required = set(schema.get("required", []))
        rows = []
        for field, field_schema in properties.items():
            description = inline(field_schema.get("description", ""))
            if field_schema.get("type") == "object" and "properties" in field_schema:
                inner = ", ".join(literal(key) for key in field_schema["properties"])
                description = (description + " " if description else "") + f"An object: {inner}."
            rows.append(
                [
                    literal(field),
                    schema_type(field_schema),
                    "yes" if field in required else "no",
                    description,
                ]
            )
        lines += list_table(["field", "type", "always there", "meaning"], rows, "20 25 15 40")
        if schema.get("additionalProperties") is False:
            lines += ["No other field is ever sent.", ""]
        return lines


class OpenApiReference(SphinxDirective):
    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        relative, path = self.env.relfn2path(self.arguments[0], self.env.docname)
        self.env.note_dependency(relative)
        with open(path, encoding="utf-8") as stream:
            document = Document(yaml.safe_load(stream))
        content = StringList(Renderer(document).render(), source=path)
        container = nodes.container()
        nested_parse_with_titles(self.state, content, container)
        return container.children


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("openapi-reference", OpenApiReference)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
