"""The channel team's requests to attribution, parsed at the edge: a CRM link's reference must
be addressable by the routes that confirm and remove it, and a health run names a bounded list
of partners. (The routes themselves, on a real server: tests/integration/
test_attribution_edges.py.)"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.attribution.schemas import HEALTH_RUN_PARTNERS_MAX, CrmLinkIn, HealthRunIn


def link(external_id: str) -> CrmLinkIn:
    return CrmLinkIn.model_validate(
        {"source": "salesforce", "external_id": external_id, "partner_id": "p-1"}
    )


@pytest.mark.parametrize(
    ("external_id", "reason"),
    [
        ("a/b", "must not contain '/'"),
        ("/", "must not contain '/'"),
        ("0015g01/", "must not contain '/'"),
        (".", "must not be '.'"),
        ("..", "must not be '..'"),
    ],
)
def test_a_reference_the_confirm_and_remove_routes_cannot_address_is_refused(
    external_id: str, reason: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        link(external_id)
    [error] = refused.value.errors()
    assert error["loc"] == ("external_id",)
    assert reason in error["msg"]
    assert "/crm-links/{source}/{external_id}/" in error["msg"]


@pytest.mark.parametrize(
    "external_id",
    ["0015g00000XyZaAAAV", "sp ace", "...", ".x", "x.", "100%", "%2F", "a?b#c", "a\\b", "a;b", "é"],
)
def test_every_other_reference_is_one_path_segment(external_id: str) -> None:
    assert link(external_id).external_id == external_id


def test_a_health_run_names_at_most_the_documented_number_of_partners() -> None:
    most = [f"p-{i}" for i in range(HEALTH_RUN_PARTNERS_MAX)]
    assert HealthRunIn.model_validate({"partner_ids": most}).partner_ids == most
    with pytest.raises(ValidationError) as refused:
        HealthRunIn.model_validate({"partner_ids": [*most, "one-more"]})
    [error] = refused.value.errors()
    assert (error["loc"], error["type"]) == (("partner_ids",), "too_long")
    assert HealthRunIn.model_validate({}).partner_ids is None  # every partner in the programme
