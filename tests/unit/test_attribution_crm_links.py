"""Which partner a CRM's partner reference stands for: only confirmed links count, an identity
link (the reference IS the partner id) counts for every CRM, and a confirmed link is never
silently moved to another partner."""

from __future__ import annotations

import pytest

from services.attribution.domain.crm_links import (
    CrmLink,
    CrmLinks,
    LinkedToAnotherPartner,
    LinkStatus,
    check_confirmation,
    check_proposal,
)
from shared.errors import Conflict

CONFIRMED, PROPOSED = LinkStatus.CONFIRMED, LinkStatus.PROPOSED


def test_only_confirmed_links_resolve_a_reference() -> None:
    links = CrmLinks.of(
        [
            CrmLink("salesforce", "0015g01", "p-1", CONFIRMED),
            CrmLink("salesforce", "0015g02", "p-2", PROPOSED),
        ]
    )
    assert links.partner_for("salesforce", "0015g01") == "p-1"
    assert links.partner_for("salesforce", "0015g02") is None  # proposed: still unmatched
    assert links.partner_for("hubspot", "0015g01") is None  # another CRM's reference
    assert links.partner_for("salesforce", "p-1") is None  # not an identity link
    assert links.partner_for("salesforce", None) is None
    assert links.partner_for("salesforce", "") is None


def test_an_identity_link_counts_for_every_crm_once_confirmed() -> None:
    confirmed = CrmLinks.of([CrmLink("aws_ace", "p-7", "p-7", CONFIRMED)])
    assert confirmed.partner_for("aws_ace", "p-7") == "p-7"
    assert confirmed.partner_for("microsoft", "p-7") == "p-7"
    proposed = CrmLinks.of([CrmLink("aws_ace", "p-7", "p-7", PROPOSED)])
    assert proposed.partner_for("microsoft", "p-7") is None
    # a link of the CRM's own outranks the identity shortcut
    both = CrmLinks.of(
        [
            CrmLink("aws_ace", "p-7", "p-7", CONFIRMED),
            CrmLink("microsoft", "p-7", "p-9", CONFIRMED),
        ]
    )
    assert both.partner_for("microsoft", "p-7") == "p-9"


def test_a_confirmed_link_is_not_moved_to_another_partner_by_a_proposal() -> None:
    confirmed = CrmLink("salesforce", "0015g01", "p-1", CONFIRMED)
    check_proposal(None, "p-1")
    check_proposal(confirmed, "p-1")
    check_proposal(CrmLink("salesforce", "0015g01", "p-1", PROPOSED), "p-2")
    with pytest.raises(LinkedToAnotherPartner) as refused:
        check_proposal(confirmed, "p-2")
    assert isinstance(refused.value, Conflict)
    assert refused.value.message == (
        "salesforce reference '0015g01' is already linked to another partner: remove that "
        "link first"
    )


def test_a_manager_confirms_only_the_partner_it_read_proposed() -> None:
    """A proposal replaced after the manager read it was confirmed unseen (found from outside)."""
    proposed = CrmLink("salesforce", "0015g01", "p-2", PROPOSED)
    check_confirmation(proposed, "p-2")
    with pytest.raises(Conflict) as refused:
        check_confirmation(proposed, "p-1")
    assert refused.value.message == (
        "salesforce reference '0015g01' is proposed for partner p-2, not p-1: read the "
        "proposal again before confirming"
    )
