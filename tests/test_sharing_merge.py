"""The three-way compare and the CLI's FIELD=VALUE parsing, as plain functions."""

from __future__ import annotations

import pytest

from agent.alarms.catalog import BUILTIN_TYPES, Kind
from agent.api.app import Services, create_app
from agent.cli.sharing import parse_fields
from agent.sharing.merge import compare, field_merge

CLASSES = ("user", "station", "directory-number", "group", "mailbox")
A = {"login": "ada", "name": "Ada", "number": "2001", "email": "ada@example.com"}


def test_one_sided_changes_go_to_the_other_side() -> None:
    base = {("user", "ada"): A, ("station", "2001"): {"type": "9608"}}
    element = {("user", "ada"): {**A, "name": "Ada L."}, ("station", "2001"): {"type": "9608"}}
    hub = {("user", "ada"): A, ("station", "2001"): {"type": "J179"}, ("group", "g1"): {"n": 1}}
    plan = compare(element, hub, base, CLASSES)
    assert plan.to_hub == [("user", "ada", {**A, "name": "Ada L."})]
    assert plan.to_element == [
        ("group", "g1", "create", {"n": 1}),
        ("station", "2001", "update", {"type": "J179"}),
    ]
    assert plan.found == []


def test_deletions_are_one_sided_changes_too() -> None:
    base = {("user", "ada"): A, ("group", "g1"): {"n": 1}}
    plan = compare({("group", "g1"): {"n": 1}}, {("user", "ada"): A}, base, CLASSES)
    assert plan.to_hub == [("user", "ada", None)]
    assert plan.to_element == [("group", "g1", "delete", None)]


def test_agreement_moves_the_base_and_other_classes_are_ignored() -> None:
    same = {("user", "ada"): A, ("board", "1A01"): {"type": "x"}}
    plan = compare(same, {("user", "ada"): A}, {}, CLASSES)
    assert plan.agreed == [("user", "ada", A)]
    assert plan.to_hub == plan.to_element == []


def test_both_sides_changing_different_fields_merge_automatically() -> None:
    element = {("user", "ada"): {**A, "email": "ada@new.org"}}
    hub = {("user", "ada"): {**A, "name": "Ada Lovelace"}}
    plan = compare(element, hub, {("user", "ada"): A}, CLASSES)
    merged = {**A, "email": "ada@new.org", "name": "Ada Lovelace"}
    (found,) = plan.found
    assert (found.category, found.merged) == ("automatic", merged)
    assert plan.to_hub == [("user", "ada", merged)]
    assert plan.to_element == [("user", "ada", "update", merged)]


@pytest.mark.parametrize(
    ("element", "hub", "base", "reason"),
    [
        ({**A, "name": "E"}, {**A, "name": "H"}, A, "same field differently"),
        (None, {**A, "name": "H"}, A, "deleted on the element"),
        ({**A, "name": "E"}, None, A, "deleted on the hub"),
        ({**A, "name": "E"}, {**A, "name": "H"}, None, "created on both sides"),
    ],
)
def test_true_conflicts_are_unresolved_and_nothing_is_applied(
    element: dict[str, str] | None,
    hub: dict[str, str] | None,
    base: dict[str, str] | None,
    reason: str,
) -> None:
    def of(value: dict[str, str] | None) -> dict[tuple[str, str], dict[str, str]]:
        return {} if value is None else {("user", "ada"): value}

    plan = compare(of(element), of(hub), of(base), CLASSES)
    (found,) = plan.found
    assert found.category == "unresolved"
    assert reason in found.reason
    assert (found.hub, found.element, found.base) == (hub, element, base)
    assert plan.to_hub == plan.to_element == []


@pytest.mark.parametrize("field", ["number", "login", "email"])
def test_users_under_two_keys_pair_by_number_then_login_then_email(field: str) -> None:
    hub_user = {"login": "x", "number": "1", "email": "x@e.org"}
    element_user = {"login": "y", "number": "2", "email": "y@e.org", field: hub_user[field]}
    plan = compare({("user", "y"): element_user}, {("user", "x"): hub_user}, {}, CLASSES)
    (found,) = plan.found
    assert (found.category, found.key, found.hub_key) == ("review", "y", "x")
    assert f"same {field}" in found.reason
    assert plan.to_hub == plan.to_element == []


def test_field_merge_refuses_overlapping_changes() -> None:
    assert field_merge({"a": 1, "b": 2}, {"a": 1, "b": 3}, {"a": 1, "b": 1}) is None
    assert field_merge({"a": 2}, {"a": 2}, {"a": 1}) == {"a": 2}
    assert field_merge({"a": 2, "b": 1}, {"a": 1}, {"a": 1, "b": 1}) == {"a": 2}


def test_cli_fields_are_strings_unless_json_is_asked_for() -> None:
    assert parse_fields(["number=20001", "cos:=2", "tags:=[1,2]", "name=a=b"]) == {
        "number": "20001",
        "cos": 2,
        "tags": [1, 2],
        "name": "a=b",
    }
    assert parse_fields(["note=a:=b"]) == {"note": "a:=b"}
    with pytest.raises(ValueError, match="not FIELD=VALUE"):
        parse_fields(["oops"])
    with pytest.raises(ValueError, match="not JSON"):
        parse_fields(["cos:=two"])


def test_every_alarm_names_a_cli_command_and_an_existing_api_route() -> None:
    app = create_app(
        Services(
            manager=None,
            token="t",
            started_at=None,
            store_url="",  # type: ignore[arg-type]
            store_id="",
        )
    )
    routes = {(method, path) for path, item in app.openapi()["paths"].items() for method in item}
    for alarm_type in BUILTIN_TYPES:
        if alarm_type.kind is not Kind.ALARM:
            continue
        cli, _, api = alarm_type.resolution.partition(" | ")
        assert cli.startswith("provsync "), alarm_type.id
        method, _, path = api.partition(" ")
        path = path.split("?")[0].replace("{resource}", "{name}")
        assert (method.lower(), path) in routes, (alarm_type.id, api)
