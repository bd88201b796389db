"""Whose people a partner may register (pure rule, `domain/verification.py`): only addresses in
the domain it holds, or under it, compared as DNS resolves them (case, IDN by A-labels), and
never before its domain is verified. Found from outside: a partner registered another partner's
people, and took their certifications and the competency they made."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.onboarding.domain.verification import address_host, check_may_name, domains_above
from shared.errors import Forbidden, Unprocessable

HELD = datetime(2026, 11, 1, tzinfo=UTC)
LIMA = "lima.example"


def may_name(host: str, holders: dict[str, str] | None = None, *, verified: bool = True) -> None:
    """Partner ptn_lima, claiming lima.example, names an address on `host` (as written)."""
    held = address_host(host, "email")
    check_may_name(
        "ptn_lima",
        LIMA,
        HELD if verified else None,
        held,
        {LIMA: "ptn_lima"} | (holders or {}) if verified else (holders or {}),
        f"carol@{host}",
    )


@pytest.mark.parametrize(
    "host", ["lima.example", "LIMA.Example", "mail.lima.example", "lima.example."]
)
def test_a_partner_names_addresses_in_its_held_domain_or_under_it(host: str) -> None:
    may_name(host)


@pytest.mark.parametrize(
    "host", ["mike.example", "evil-lima.example", "lima.example.evil", "example", "lima.exampl"]
)
def test_an_address_outside_the_held_domain_is_refused_naming_the_rule(host: str) -> None:
    with pytest.raises(Forbidden) as refused:
        may_name(host)
    assert str(refused.value) == (
        f"carol@{host} is not in lima.example, the domain partner ptn_lima holds: a partner "
        "registers only people with addresses in its own domain (or under it); a channel "
        "manager registers people with other addresses"
    )


def test_an_idn_domain_compares_by_its_a_labels_however_it_is_written() -> None:
    held = address_host("bücher.example", "domain")
    assert held == "xn--bcher-kva.example"
    for written in ("BÜCHER.example", "xn--bcher-kva.example", "eu.Bücher.example"):
        check_may_name(
            "ptn_b", held, HELD, address_host(written, "email"), {held: "ptn_b"}, "ada@" + written
        )
    with pytest.raises(Forbidden):
        check_may_name("ptn_b", held, HELD, address_host("bucher.example", "email"), {}, "x")


def test_nothing_is_named_before_the_domain_is_verified() -> None:
    # The claim alone is anyone's word: Mike may claim lima.example too.
    with pytest.raises(Forbidden) as refused:
        may_name("lima.example", verified=False)
    assert str(refused.value) == (
        "partner ptn_lima does not hold its domain lima.example yet: once it has verified it "
        "(POST /partners/ptn_lima/domain-verification) it registers people with addresses "
        "there; until then a channel manager registers its people"
    )


def test_a_subdomain_another_partner_holds_is_that_partners() -> None:
    holders = {"eu.lima.example": "ptn_eu"}
    for host in ("eu.lima.example", "mail.eu.lima.example"):
        with pytest.raises(Forbidden) as refused:
            may_name(host, holders)
        assert str(refused.value).startswith(
            f"carol@{host} is in eu.lima.example, a domain another partner holds"
        )
    may_name("us.lima.example", holders)  # the rest stays Lima's
    # A domain above Lima's held by someone else changes nothing: the nearest one decides.
    may_name("mail.lima.example", {"example": "ptn_other"})


def test_domains_above_a_host_most_specific_first() -> None:
    assert domains_above("a.b.lima.example") == [
        "a.b.lima.example",
        "b.lima.example",
        "lima.example",
        "example",
    ]


def test_a_host_that_is_no_host_name_is_unprocessable() -> None:
    with pytest.raises(Unprocessable, match="email is not a host name"):
        address_host("lima..example", "email")
