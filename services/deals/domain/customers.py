"""Customer identity: normalised domains and company names, and how alike two names are."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from difflib import SequenceMatcher

# Second-level labels under which registrations happen (example.co.uk): keep three labels there.
_MULTI_LABEL_SUFFIXES = frozenset(
    {
        "co.uk",
        "org.uk",
        "ac.uk",
        "com.au",
        "net.au",
        "co.nz",
        "co.jp",
        "com.br",
        "com.mx",
        "co.in",
        "com.sg",
        "co.za",
    }
)
_LEGAL_SUFFIXES = frozenset(
    {
        "inc",
        "incorporated",
        "corp",
        "corporation",
        "co",
        "company",
        "llc",
        "llp",
        "lp",
        "ltd",
        "limited",
        "plc",
        "gmbh",
        "ag",
        "kg",
        "se",
        "sa",
        "sas",
        "sarl",
        "srl",
        "spa",
        "bv",
        "nv",
        "oy",
        "ab",
        "as",
        "aps",
        "pty",
        "pte",
        "kk",
        "group",
        "holdings",
        "holding",
    }
)


def normalise_domain(value: str | None) -> str | None:
    """'https://www.Sales.Northwind-Traders.com/path' -> 'northwind-traders.com'."""
    if not value:
        return None
    host = value.strip().lower()
    host = re.sub(r"^[a-z][a-z0-9+.-]*://", "", host)
    host = host.split("/", 1)[0].split("?", 1)[0].split("@")[-1].split(":", 1)[0].strip(".")
    if "." not in host or not re.fullmatch(r"[a-z0-9.-]+", host):
        return None
    labels = host.split(".")
    keep = 3 if ".".join(labels[-2:]) in _MULTI_LABEL_SUFFIXES else 2
    return ".".join(labels[-keep:])


def normalise_name(value: str | None) -> str:
    """'Northwind Traders, Ltd.' -> 'northwind traders' (case, accents, punctuation, legal form)."""
    if not value:
        return ""
    text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode().lower()
    # Dots join abbreviations ("S.A.", "Inc.") rather than separate words.
    text = text.replace("&", " and ").replace(".", "")
    words = re.sub(r"[^a-z0-9]+", " ", text).split()
    while len(words) > 1 and words[-1] in _LEGAL_SUFFIXES:
        words.pop()
    return " ".join(words)


def name_key(value: str | None) -> str:
    """A blocking key for candidate lookup: the first word of the normalised name."""
    normalised = normalise_name(value)
    return normalised.split(" ", 1)[0] if normalised else ""


def name_similarity(a: str | None, b: str | None) -> float:
    """0..1 similarity of two company names after normalisation."""
    return _similarity(normalise_name(a), normalise_name(b))


def _similarity(left: str, right: str) -> float:
    if not left or not right:
        return 0.0
    if left == right:
        return 1.0
    return round(SequenceMatcher(None, left, right).ratio(), 4)


@dataclass(frozen=True)
class Customer:
    """A customer as the rules compare it, parsed once where it enters: the name as given, its
    normalised form and blocking key, the registrable domain and the country."""

    name: str
    domain: str | None  # the registrable domain (normalised), None when there is none
    country: str | None
    normalised_name: str
    name_key: str  # the first word of the normalised name: the fuzzy lookup's block

    @classmethod
    def parse(
        cls, name: str | None, domain: str | None = None, country: str | None = None
    ) -> Customer:
        normalised = normalise_name(name)
        return cls(
            name=name or "",
            domain=normalise_domain(domain),
            country=country.upper() if country else None,
            normalised_name=normalised,
            name_key=normalised.split(" ", 1)[0] if normalised else "",
        )

    def matches(self, other: Customer, threshold: float) -> tuple[str, float] | None:
        """How `other` is the same customer: ("domain", 1.0) on the same registrable domain,
        ("name", similarity) when the names are at least `threshold` alike, else None."""
        if self.domain and self.domain == other.domain:
            return "domain", 1.0
        similarity = _similarity(self.normalised_name, other.normalised_name)
        if similarity >= threshold:
            return "name", similarity
        return None
