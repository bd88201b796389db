"""The console's page rules: which partners a health filter keeps, and paging."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from services.portal.domain.partners import PAGE, Paging, below, score_of
from tests.support.infra import ROOT


def test_the_health_filter_keeps_scores_under_the_threshold_and_unreadable_ones() -> None:
    rows = [
        {"partner_id": "a", "health": {"score": "12.50"}},
        {"partner_id": "b", "health": {"score": "40"}},
        {"partner_id": "c", "health": {"score": "39.99"}},
        {"partner_id": "d", "health": None},
        {"partner_id": "e", "health": {"score": "n/a"}},
    ]
    assert [r["partner_id"] for r in below(rows, Decimal(40))] == ["a", "c", "d", "e"]
    assert [r["partner_id"] for r in below(rows, Decimal(0))] == ["d", "e"]
    assert score_of({"score": "7.25"}) == Decimal("7.25")
    assert score_of(None) is None


def test_paging_says_where_a_page_is_and_what_comes_before_and_after() -> None:
    first = Paging(0, PAGE, PAGE * 2 + 3)
    assert (first.first, first.last, first.previous, first.next) == (1, PAGE, None, PAGE)
    last = Paging(PAGE * 2, 3, PAGE * 2 + 3)
    assert (last.first, last.last, last.previous, last.next) == (
        PAGE * 2 + 1,
        PAGE * 2 + 3,
        PAGE,
        None,
    )
    empty = Paging(0, 0, 0)
    assert (empty.first, empty.last, empty.previous, empty.next) == (0, 0, None, None)
    exact = Paging(0, PAGE, PAGE)
    assert exact.next is None


def test_a_policy_draft_must_be_a_json_object() -> None:
    from services.portal.policy import NotADocument, document_of

    assert document_of('{"version": "v2", "protection_days": 60}') == {
        "version": "v2",
        "protection_days": 60,
    }
    with pytest.raises(NotADocument, match="not JSON"):
        document_of("{version: v2}")
    with pytest.raises(NotADocument, match="must be a JSON object"):
        document_of('["version", "v2"]')


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('{"a": NaN}', "NaN is not a JSON number"),
        ('{"a": -Infinity}', "-Infinity is not a JSON number"),
        ('{"a": 1e999}', "1e999 is beyond the numbers a document may hold"),
        ('{"protection_days": 1e400}', "1e400 is beyond the numbers a document may hold"),
        ('{"a": "\\ud800"}', "half of a UTF-16 surrogate pair alone"),
        ('{"a": ' * 3000 + "1" + "}" * 3000, "nested deeper than 31 levels"),
        ("[" * 50_000 + "]" * 50_000, "nested deeper than 31 levels"),
        ('{"a": ' * 32 + "1" + "}" * 32, "nested deeper than 31 levels"),
        ('{"a": ' + "9" * 5000 + "}", "not JSON"),
    ],
)
def test_a_policy_draft_that_could_not_be_sent_on_as_json_is_refused_saying_why(
    text: str, why: str
) -> None:
    """Found from outside: each of these answered 500 from the policy console (NaN and 1e999
    could not be written again for the deals service, nor a lone surrogate; the nesting ran
    out of recursion)."""
    from services.portal.policy import NotADocument, document_of

    with pytest.raises(NotADocument, match=re.escape(why)):
        document_of(text)


def test_the_policy_textarea_takes_what_the_server_takes() -> None:
    """Found in review: without a bound in the page, a longer draft was the server's 422 on an
    error page and the draft was gone; the browser stops at the server's bound."""
    from services.portal.policy import DOCUMENT_MAX

    page = (ROOT / "services/portal/templates/console_policy.html").read_text()
    found = re.search(r'<textarea id="document"[^>]*maxlength="(\d+)"', page)
    assert found is not None
    assert int(found.group(1)) == DOCUMENT_MAX
