"""The constrained input types, the JSON guards of the HTTP edge, the 422 shape, the CRM
adapters' type checks and the confusable folding of customer names."""

from __future__ import annotations

import tracemalloc
import unicodedata
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from services.deals.adapters import AdapterError, from_hubspot, from_salesforce_cdc
from services.deals.crm_ingestion import hubspot_items
from services.deals.domain.customers import (
    Customer,
    _prototypes,
    fold,
    name_key,
    name_similarity,
    normalise_name,
    skeleton,
)
from shared.http import validation_errors
from shared.inputs import (
    MAX_JSON_DEPTH,
    CountryCode,
    CurrencyCode,
    Day,
    EmailAddress,
    FreeText,
    HttpsUrl,
    Ident,
    InputError,
    Instant,
    JsonObject,
    MalformedJson,
    Money,
    Name,
    check_email,
    check_https_url,
    check_money,
    json_depth,
    parse_json,
    storable_json,
)
from tests.support.crm import hubspot_property_change


def refused(kind: Any, value: Any) -> str:
    with pytest.raises(ValidationError) as error:
        TypeAdapter(kind).validate_python(value)
    return str(error.value)


@pytest.mark.parametrize("kind", [Ident, Name, FreeText])
@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("a\x00b", "NUL"),
        ("a\ud800b", "unicode"),  # pydantic refuses a lone surrogate itself
        ("a\x1bb", "control characters (U+001B)"),
        ("a\x85b", "control characters (U+0085)"),
    ],
)
def test_strings_refuse_nul_surrogates_and_controls(kind: Any, value: str, why: str) -> None:
    assert why in refused(kind, value)


BIDI_CONTROLS = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))]


@pytest.mark.parametrize("kind", [Ident, Name, FreeText, EmailAddress])
@pytest.mark.parametrize("control", BIDI_CONTROLS)
def test_strings_refuse_bidi_embeddings_overrides_and_isolates(kind: Any, control: str) -> None:
    """Found from outside: "Northwind Traders U+202E" showed the console's "(isv,
    moc.tfosorcim)" after it as "(microsoft.com ,vsi)"."""
    value = f"ada{control}@x.example" if kind is EmailAddress else f"Northwind {control}Traders"
    why = refused(kind, value)
    assert f"bidirectional embedding, override or isolate controls (U+{ord(control):04X})" in why


def test_right_to_left_text_keeps_its_implicit_marks_but_not_an_override() -> None:
    # Hebrew and Arabic need no explicit control; LRM, RLM and ALM place punctuation in them.
    texts = (
        '\u05d0\u05d1\u05d2 \u05d1\u05e2"\u05de',
        "\u0634\u0631\u0643\u0629 (1)\u200f",
        "Acme\u200e",
        "\u0661\u061c\u0662",
    )
    for kind in (Name, FreeText, Ident):
        for text in texts:
            assert TypeAdapter(kind).validate_python(text) == text
            assert "bidirectional" in refused(kind, "\u202e" + text)


def test_free_text_keeps_tab_and_newline_but_names_and_ids_do_not() -> None:
    assert TypeAdapter(FreeText).validate_python("line one\n\tline two") == "line one\n\tline two"
    assert "control characters" in refused(Name, "Acme\nInc")
    assert "control characters" in refused(Ident, "id\t1")


def test_names_are_nfkc_normalised_and_must_keep_a_letter_or_digit() -> None:
    assert TypeAdapter(Name).validate_python("  \uff21cme\u00a0  Inc ") == "Acme Inc"
    for empty in ("...", " - ", "\u200b", "\u3000"):
        assert "a letter or a digit" in refused(Name, empty)


def test_strings_and_lists_are_bounded() -> None:
    assert "at most 200 characters" in refused(Ident, "x" * 201)
    assert "at most 200 characters" in refused(Name, "x" * 201)
    assert "Input should be a valid string" in refused(Name, 5)


def test_iso_codes_come_from_the_maintained_lists() -> None:
    assert TypeAdapter(CurrencyCode).validate_python("JPY") == "JPY"
    assert TypeAdapter(CountryCode).validate_python("DE") == "DE"
    assert "ISO 4217" in refused(CurrencyCode, "ABC")
    assert "ISO 4217" in refused(CurrencyCode, "XAU")  # no minor unit: not for amounts
    assert "ISO 3166-1" in refused(CountryCode, "ZZ")
    assert "ISO 3166-1" in refused(CountryCode, "UK")


def test_amounts_fit_the_columns_and_their_currency() -> None:
    assert check_money(Decimal("10"), "JPY") == Decimal("10")
    assert check_money(Decimal("10.50"), "EUR") == Decimal("10.50")
    with pytest.raises(InputError, match="at most 0 allowed in JPY"):
        check_money(Decimal("10.5"), "JPY")
    with pytest.raises(InputError, match="must be below 10"):
        check_money(Decimal("1e14"), None)
    with pytest.raises(InputError, match="finite"):
        check_money(Decimal("NaN"), None)
    assert "at most 16 digits" in refused(Money, 10**20).replace("no more than", "at most")
    assert "finite" in refused(Money, float("inf"))
    # Decimals are counted exactly, not after rounding to 28 digits (both passed before)
    with pytest.raises(InputError, match="has 30 decimals"):
        check_money(Decimal("1.000000000000000000000000000001"), None)
    with pytest.raises(InputError, match="has 21 decimals"):
        check_money(Decimal("99999999999999.999999999999999999999"), None)
    assert check_money(Decimal("1200.100000000000000000000000000000"), "EUR")
    # Text is read as JSON writes a number, nothing Decimal reads besides
    for text in ("1_000", " 100 ", "\u0661\u0662\u0663", "\uff15\uff10", "+5", "1e3", "1.", ".5"):
        assert "ASCII digits" in refused(Money, text), text
    assert TypeAdapter(Money).validate_python("1250.50") == Decimal("1250.50")


@pytest.mark.parametrize(
    "moment", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00", "1899-12-31T00:00:00Z"]
)
def test_instants_that_would_overflow_are_refused(moment: str) -> None:
    assert "between 1900 and 9999" in refused(Instant, moment)


def test_the_last_day_and_instant_are_refused_as_the_database_keeps_them_as_infinity() -> None:
    assert "must be before 9999-12-31" in refused(Day, "9999-12-31")
    assert "must be before 9999-12-31T23:59:59.999999+00:00" in refused(
        Instant, "9999-12-31T23:59:59.999999Z"
    )
    assert TypeAdapter(Day).validate_python("9999-12-30").isoformat() == "9999-12-30"
    assert TypeAdapter(Instant).validate_python("9999-12-31T23:59:59.999998Z")


def test_instants_need_an_offset_and_come_back_in_utc() -> None:
    assert "time zone" in refused(Instant, "2026-01-01T00:00:00")
    parsed = TypeAdapter(Instant).validate_python("2026-01-01T05:00:00+05:00")
    assert parsed == datetime(2026, 1, 1, tzinfo=UTC)
    assert parsed.utcoffset() is not None


def test_json_depth_ignores_brackets_in_strings() -> None:
    assert json_depth(b'{"a": [1, 2]}') == 0  # few brackets: not scanned
    assert json_depth(b"[" * 40 + b"]" * 40) == 40
    assert json_depth(b'["' + b"[" * 100 + b'"]' + b"{}" * 40) == 1
    # An escaped quote does not end a string; an escaped backslash before a quote does not
    # keep it open.
    assert json_depth(b'["a\\"' + b"[" * 40 + b'"]' + b"{}" * 40) == 1
    assert json_depth(b'["a\\\\", ' + b"[" * 40 + b"]" * 40 + b"]") == 41


def test_hand_read_json_is_exact_and_refuses_what_json_is_not() -> None:
    assert parse_json(b'{"amount": 1e400}') == {"amount": Decimal("1e400")}
    assert parse_json(b'{"amount": 0.1}') == {"amount": Decimal("0.1")}
    for body, why in [
        (b'{"a": NaN}', "NaN is not a JSON number"),
        (b"[Infinity]", "Infinity is not a JSON number"),
        (b'{"a": "\xff"}', "malformed JSON"),
        (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), "nested deeper"),
        (b"[" * 100_000, "nested deeper"),
        (b"{", "malformed JSON"),
    ]:
        with pytest.raises(MalformedJson, match=why) as error:
            parse_json(body)
        assert error.value.status == 400


@pytest.mark.parametrize(
    ("document", "why"),
    [
        ({"a": ["x", {"b": "c\x00d"}]}, r"json\.a\[1\]\.b must not contain NUL"),
        ({"a": {"k\x00": 1}}, r"a key in json\.a must not contain NUL"),
        ({"a": "\udfff"}, r"json\.a must not contain lone surrogates \(U\+DFFF\)"),
        ({"a": [1, float("nan")]}, r"json\.a\[1\] must be a finite number"),
        ({"a": float("inf")}, "must be a finite number"),
        ({"a": Decimal("sNaN")}, "must be a finite number"),
    ],
)
def test_free_json_refuses_what_jsonb_cannot_keep(document: Any, why: str) -> None:
    assert refused(JsonObject, document)
    with pytest.raises(InputError, match=why):
        storable_json(document, "json")


def test_checking_free_json_takes_memory_in_proportion_to_it() -> None:
    """Found in review: each item's path was built as a string, so one long key over a long
    array cost key x items (a 304 kB xAPI statement took 398 MiB). Here 0.1 MB of JSON, which
    took about 200 MB; a long key is cut where an error names it."""
    key = "k" * 4_000
    document = {"extensions": {key: [0] * 50_000}}
    tracemalloc.start()
    try:
        storable_json(document, "statement")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000
    document["extensions"][key][-1] = float("nan")
    with pytest.raises(InputError, match=r"^statement\.extensions\.k{64}\.\.\.\[49999\] must be"):
        storable_json(document, "statement")


def test_free_json_is_kept_exactly_as_sent() -> None:
    document = {"a": ["x\ty", 1, 2.5, None, True, {"é": "\u2028 ok"}], "b": Decimal("1e400")}
    assert TypeAdapter(JsonObject).validate_python(document) == document


@pytest.mark.parametrize(
    "address",
    [
        "a..b@x.example",
        ".a@x.example",
        "a@-x-.example",
        'a"b<s>@x..example',
        "a@b.local",
        "a@localhost",
        "a b@x.example",
        "a@x.example\n",
        "@x.example",
        "a@[127.0.0.1]",
        "Ada <a@x.example>",
    ],
)
def test_email_addresses_are_plain_and_have_a_real_domain(address: str) -> None:
    why = refused(EmailAddress, address)
    assert "valid e-mail address" in why or "control characters" in why


def test_an_address_that_only_names_someone_may_be_in_a_test_sandbox() -> None:
    assert check_email("ada@lms.test", mailbox=False) == "ada@lms.test"
    with pytest.raises(InputError, match="special-use"):
        check_email("ada@lms.test")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://res.example:abc/a", "not a valid URL: Port could not be cast"),
        ("https://res.example:99999/a", "not a valid URL: Port out of range"),
        ("https://res.example:0/a", "port must be a number from 1 to 65535"),
        ("https://res.example:/a", "port must be a number from 1 to 65535"),
        ("https://[::1/a", "not a valid URL: Invalid IPv6 URL"),
        ("https://[res.example]/a", "does not appear to be an IPv4 or IPv6 address"),
        ("https://[fe80::1%25eth0]/a", "must not name a zone"),
        ("https://2852039166/a", "not an IPv4 address in dotted decimal form"),
        ("https://exa_mple..com/a", "host is not a valid name"),
        ("https:///a", "must name a host"),
        ("https://user:pw@res.example/a", "must not carry credentials"),
        ("https://res.example/\u202eexe.pdf", "bidirectional embedding"),
    ],
)
def test_https_urls_are_parsed_as_a_browser_opens_them(url: str, why: str) -> None:
    assert why in refused(HttpsUrl, url)


def test_an_https_url_is_kept_as_given_and_a_stored_one_judged_without_the_pattern() -> None:
    for url in (
        "https://res.example/a?b=c#d",
        "https://res.example:8443/a",
        "https://b\u00fccher.example/katalog",
        "https://[2001:db8::1]:8443/",
        "https://93.184.216.34/a",
        "https://res.example./a",
    ):
        assert TypeAdapter(HttpsUrl).validate_python(url) == url
        assert check_https_url(url) == url
    # What the portal asks of an address stored before the check (no pattern ahead of it).
    for url, why in (
        ("http://res.example/a", "must be an https URL"),
        ("https://res.example/a\u00a0b", "must not contain spaces"),
        ("https://res.example:99999/a", "Port out of range"),
    ):
        with pytest.raises(InputError, match=why):
            check_https_url(url)


def test_email_addresses_are_kept_as_given() -> None:
    assert TypeAdapter(EmailAddress).validate_python("Ada.L+x@Vendor.example") == (
        "Ada.L+x@Vendor.example"
    )
    assert check_email("zoë@vendor.example") == "zoë@vendor.example"
    with pytest.raises(InputError, match="Internationalized characters before the @-sign"):
        check_email("zoë@vendor.example", ascii_only=True)


def test_a_422_names_the_field_and_cuts_the_input_short() -> None:
    errors = [
        {
            "type": "string_too_long",
            "loc": ("body", "name"),
            "msg": "too long",
            "input": "x" * 10**6,
        },
        {"type": "missing", "loc": ("body", "\ud800"), "msg": "Field required", "input": {"a": 1}},
        {
            "type": "finite_number",
            "loc": ("body", "amount"),
            "msg": "finite",
            "input": float("nan"),
        },
    ]
    shown = validation_errors(errors)
    assert shown[0] == {
        "type": "string_too_long",
        "loc": ["body", "name"],
        "msg": "too long",
        "input": "x" * 64 + "...",
    }
    assert shown[1]["loc"] == ["body", "\\ud800"]
    assert "input" not in shown[1]
    assert "input" not in shown[2]


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (
            {"payload": {"ChangeEventHeader": {"entityName": "Opportunity", "recordIds": "abc"}}},
            "recordIds: expected an array, got str",
        ),
        (
            {
                "payload": {
                    "ChangeEventHeader": {
                        "entityName": "Opportunity",
                        "recordIds": ["1"],
                        "changeType": "CREATE",
                        "commitTimestamp": 10**20,
                    }
                }
            },
            "between 1900 and 9999",
        ),
    ],
)
def test_salesforce_fields_of_the_wrong_type_are_refused(payload: Any, why: str) -> None:
    with pytest.raises(AdapterError, match=why):
        from_salesforce_cdc(payload)


@pytest.mark.parametrize(
    ("event", "why"),
    [
        ({"objectId": {"id": 1}}, r"\[0\].objectId: expected a string, got dict"),
        ({"objectId": True}, r"\[0\].objectId: expected a string, got bool"),
        ({"occurredAt": "soon"}, "expected epoch milliseconds, got str"),
        (
            {
                "subscriptionType": "deal.propertyChange",
                "propertyName": "amount",
                "propertyValue": [1],
            },
            "expected a number, got list",
        ),
        (
            {
                "subscriptionType": "deal.propertyChange",
                "propertyName": "dealname",
                "propertyValue": "\x00",
            },
            "NUL",
        ),
        (
            {
                "subscriptionType": "deal.propertyChange",
                "propertyName": "dealname",
                "propertyValue": "Fabrikam \u202e",
            },
            r"bidirectional embedding, override or isolate controls \(U\+202E\)",
        ),
    ],
)
def test_hubspot_fields_of_the_wrong_type_are_refused(event: dict[str, Any], why: str) -> None:
    base = {
        "eventId": 1,
        "portalId": 5,
        "subscriptionType": "deal.creation",
        "objectId": 7,
        "occurredAt": 1,
    }
    with pytest.raises(AdapterError, match=why):
        from_hubspot([{**base, **event}])


def test_a_crm_item_with_a_bidi_control_is_refused_alone_saying_why() -> None:
    at = datetime.now(UTC)
    good = hubspot_property_change(7, "dealname", "Fabrikam", at)
    bad = hubspot_property_change(8, "dealname", "Fabrikam \u202e", at)
    items = hubspot_items([good, bad], at, frozenset({str(good["portalId"])}))
    assert [(item.index, item.refused) for item in items] == [
        (0, None),
        (
            1,
            "[1].propertyValue must not contain bidirectional embedding, override or isolate "
            "controls (U+202E)",
        ),
    ]


def test_a_hubspot_numeric_object_id_is_still_an_id() -> None:
    [change] = from_hubspot(
        [
            {
                "eventId": 1,
                "portalId": 5,
                "subscriptionType": "deal.creation",
                "objectId": 7,
                "occurredAt": 1,
            }
        ]
    )
    assert change.deal_key == "hubspot:5:7"


# ---- confusables


@pytest.mark.parametrize(
    "look_alike",
    [
        "\u0410\u0441me Robotics",  # Cyrillic A and ES
        "\uff21\uff43\uff4d\uff45 Robotics",  # full-width
        "\U0001d400\U0001d41c\U0001d426\U0001d41e Robotics",  # mathematical bold
        "Acm\u0435 R\u043ebotics",  # Cyrillic IE and O
        "ACME ROBOTICS, \u0406nc.",  # Cyrillic I in the legal form
    ],
)
def test_look_alike_letters_fold_to_the_same_key(look_alike: str) -> None:
    assert name_key(look_alike) == name_key("Acme Robotics")
    assert name_similarity(look_alike, "Acme Robotics") == 1.0
    mine, theirs = Customer.parse(look_alike), Customer.parse("Acme Robotics")
    assert mine.matches(theirs, 0.88) == ("name", 1.0)


def test_skeletons_follow_uts_39() -> None:
    assert skeleton("\u0430") == skeleton("a")  # Cyrillic a
    assert skeleton("0") == skeleton("O")  # digit zero looks like capital O
    assert skeleton("rn") == skeleton("m")
    assert fold("micr0soft") == fold("microsoft")
    assert skeleton("acme") != skeleton("acne")


def uts39_skeleton(text: str) -> str:
    """The skeleton by its definition, a character at a time (what `skeleton` must equal)."""
    prototypes = _prototypes()
    mapped = "".join(prototypes.get(char, char) for char in unicodedata.normalize("NFD", text))
    return unicodedata.normalize("NFD", mapped)


@given(
    st.text(
        st.one_of(
            st.sampled_from(sorted(_prototypes())),  # the confusable characters themselves
            st.characters(),
        ),
        max_size=40,
    )
)
def test_a_skeleton_maps_every_character_to_its_prototype(text: str) -> None:
    assert skeleton(text) == uts39_skeleton(text)


@given(st.text(max_size=40))
def test_a_name_loses_its_combining_marks_whatever_its_script(text: str) -> None:
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text))
    assert not any(unicodedata.combining(char) for char in normalise_name(text))
    if decomposed.isascii():
        assert normalise_name(text) == normalise_name(decomposed)


def test_accents_go_from_names_in_any_script() -> None:
    assert normalise_name("Cr\u00e8me Br\u00fbl\u00e9e") == "creme brulee"
    assert (
        normalise_name("\u0419\u043e\u0433\u0443\u0440\u0442")
        == "\u0438\u043e\u0433\u0443\u0440\u0442"
    )


def test_names_in_other_scripts_keep_their_letters() -> None:
    customer = Customer.parse("\u0413\u0430\u0437\u043f\u0440\u043e\u043c")
    assert customer.normalised_name == "\u0433\u0430\u0437\u043f\u0440\u043e\u043c"
    assert customer.name_key
    assert name_similarity("\u0413\u0430\u0437\u043f\u0440\u043e\u043c", "Acme") < 0.5


def test_an_integer_in_a_json_body_is_a_json_integer() -> None:
    """Pydantic takes `true` for 1, "5" and 5.0 for 5: a survey answered `true` was a score."""
    from shared.inputs import Integer

    whole = TypeAdapter(Integer)
    assert whole.validate_python(5) == 5
    for value in (True, False, "5", 5.0, Decimal("5.0")):
        with pytest.raises(ValidationError):
            whole.validate_python(value)
