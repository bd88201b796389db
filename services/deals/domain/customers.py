"""Customer identity: normalised domains and company names, and how alike two names are."""

from __future__ import annotations

import re
import unicodedata
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
    left, right = normalise_name(a), normalise_name(b)
    if not left or not right:
        return 0.0
    if left == right:
        return 1.0
    return round(SequenceMatcher(None, left, right).ratio(), 4)
