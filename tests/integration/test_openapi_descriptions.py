"""Every field in /openapi.json says what it is and shows a value: /docs and /redoc, and
the clients people generate from the schema, carry both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.app import Live

REF_PREFIX = "#/components/schemas/"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The schema is the same on every database: one kind is enough."""
    return f"sqlite:///{tmp_path / 'schema.db'}"


def referenced(prop: dict[str, Any]) -> str | None:
    """The component a property stands for, when it is one: ``$ref``, nullable ``$ref``
    (``anyOf`` with null), or an array of them."""
    if "$ref" in prop:
        return str(prop["$ref"])
    variants = [v for v in prop.get("anyOf", []) if v.get("type") != "null"]
    if len(variants) == 1:
        return referenced(variants[0])
    if prop.get("type") == "array" and isinstance(prop.get("items"), dict):
        return referenced(prop["items"])
    return None


def undescribed(schema: dict[str, Any]) -> list[str]:
    """``component.property: what it lacks`` for each property of each component that has
    no description or no example. A property that is a bare ``$ref`` inherits both from
    the component it names; one that stands for a component (nullable, or an array of
    them) inherits the example, whose properties are held to the same rule."""
    components: dict[str, Any] = schema["components"]["schemas"]
    lacking = []
    for name, component in components.items():
        for prop_name, prop in component.get("properties", {}).items():
            ref = referenced(prop)
            if ref is not None:
                assert ref.startswith(REF_PREFIX) and ref[len(REF_PREFIX) :] in components, ref
            if set(prop) == {"$ref"}:
                target = components[prop["$ref"][len(REF_PREFIX) :]]
                if "description" not in target:
                    lacking.append(f"{name}.{prop_name}: its $ref has no description")
                continue
            if not prop.get("description"):
                lacking.append(f"{name}.{prop_name}: description")
            if not (prop.get("examples") or "example" in prop) and ref is None:
                lacking.append(f"{name}.{prop_name}: example")
    return lacking


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def fits(value: Any, prop: dict[str, Any], components: dict[str, Any]) -> bool:
    """Whether ``value`` has the shape ``prop`` says: types, choices, the items of arrays
    and the properties of objects (a check of the examples, not a full JSON Schema one)."""
    if "$ref" in prop:
        return fits(value, components[prop["$ref"][len(REF_PREFIX) :]], components)
    if "anyOf" in prop:
        return any(fits(value, variant, components) for variant in prop["anyOf"])
    if "enum" in prop and value not in prop["enum"]:
        return False
    kind = prop.get("type")
    if kind is not None:
        if isinstance(value, bool) and kind in ("integer", "number"):
            return False
        if not isinstance(value, _JSON_TYPES[kind]):
            return False
    if isinstance(value, list) and isinstance(prop.get("items"), dict):
        return all(fits(item, prop["items"], components) for item in value)
    if isinstance(value, dict) and "properties" in prop:
        known = prop["properties"]
        if prop.get("additionalProperties") is False and set(value) - set(known):
            return False
        return all(fits(v, known[k], components) for k, v in value.items() if k in known)
    return True


def test_every_field_in_the_schema_has_a_description_and_an_example(live: Live) -> None:
    schema = live.http.get("/openapi.json").json()
    assert undescribed(schema) == []


def test_every_example_has_the_shape_its_field_says(live: Live) -> None:
    components = live.http.get("/openapi.json").json()["components"]["schemas"]
    misfits = [
        f"{name}.{prop_name}: {example!r}"
        for name, component in components.items()
        for prop_name, prop in component.get("properties", {}).items()
        for example in prop.get("examples", [])
        if not fits(example, prop, components)
    ]
    assert misfits == []


def test_the_checks_find_a_field_without_them_and_an_example_that_does_not_fit() -> None:
    schema = {
        "components": {
            "schemas": {
                "Thing": {
                    "properties": {
                        "plain": {"type": "string"},
                        "told": {"type": "string", "description": "A name", "examples": ["a"]},
                        "part": {"$ref": "#/components/schemas/Part"},
                        "parts": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Part"},
                            "description": "Its parts",
                        },
                    }
                },
                "Part": {"type": "string", "enum": ["x"]},
            }
        }
    }
    assert undescribed(schema) == [
        "Thing.plain: description",
        "Thing.plain: example",
        "Thing.part: its $ref has no description",
    ]
    components = schema["components"]["schemas"]
    assert fits("x", {"$ref": "#/components/schemas/Part"}, components)
    assert not fits("y", {"$ref": "#/components/schemas/Part"}, components)
    assert not fits(True, {"type": "integer"}, components)
    assert not fits([1], {"type": "array", "items": {"type": "string"}}, components)
