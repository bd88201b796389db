"""Customer identity: normalised domains and company names, and how alike two names are.

Names are compared by their UTS #39 skeleton, so a look-alike letter cannot dodge a conflict:
"Acme" written with a Cyrillic A and ES (U+0410, U+0441) folds to the same key as the Latin
"Acme". The confusable mappings come from Unicode's confusables.txt as the `confusable-homoglyphs` package ships it.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import cache, lru_cache

from confusable_homoglyphs.confusables import confusables_data
from publicsuffixlist import PublicSuffixList
from rapidfuzz import fuzz

from shared.addresses import ascii_host

# How domains were keyed before the Public Suffix List (stored keys may still read so): the
# last two labels, three under these. Under any other multi-label suffix (com.tr, co.kr,
# github.io) the key was the suffix itself, shared by unrelated customers.
_FORMER_MULTI_LABEL_SUFFIXES = frozenset(
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
    """'https://www.Sales.Northwind-Traders.com/path' -> 'northwind-traders.com',
    'shop.anadolu.com.tr' -> 'anadolu.com.tr' (by the Public Suffix List); a name in
    another script by its A-labels ('bücher.de' -> 'xn--bcher-kva.de': it was dropped, and
    two partners registering the same such customer met no domain conflict); None when the
    value holds no domain name."""
    if not value:
        return None
    host = value.strip().lower()
    host = re.sub(r"^[a-z][a-z0-9+.-]*://", "", host)
    # Up to the path, query or fragment (found in review: `https://acme.com#top`, as a CRM's
    # Website field may hold it, lost its domain and so its conflicts), after any user info.
    host = re.split(r"[/?#]", host, maxsplit=1)[0].split("@")[-1].split(":", 1)[0].strip(".")
    try:  # an internationalised name as its A-labels, so bücher.de and xn--bcher-kva.de match
        host = ascii_host(host)
    except ValueError:
        return None
    if "." not in host or not re.fullmatch(r"[a-z0-9.-]+", host) or host[-1].isdigit():
        return None  # no name, or an IPv4 address (no top-level domain ends in a digit)
    # The registrable domain: the public suffix (ICANN's and private ones such as github.io,
    # whose sites are separate owners) and one label more; None for a bare public suffix,
    # which names no one. A top-level domain the list does not know counts as one label.
    registrable: str | None = _public_suffixes().privatesuffix(host)
    return registrable


@cache
def _public_suffixes() -> PublicSuffixList:
    """The Public Suffix List as the package bundles it (read once; never fetched)."""
    return PublicSuffixList()


def former_domain_key(domain: str | None) -> str | None:
    """The key the former rule (two labels, three under a fixed dozen suffixes) stored for the
    registrable `domain`, when it differs: registrations stored before the Public Suffix List
    hold it (`customer_domain`), so lookups find them by it too. None when it is the same."""
    if not domain:
        return None
    labels = domain.split(".")
    keep = 3 if ".".join(labels[-2:]) in _FORMER_MULTI_LABEL_SUFFIXES else 2
    former = ".".join(labels[-keep:])
    return None if former == domain else former


_BIDI_MARKS = str.maketrans("", "", "\u200e\u200f")


@cache
def _prototypes() -> dict[str, str]:
    """Each confusable character -> its prototype (confusables.txt's mapping). The package
    stores the mapping both ways (source -> [prototype], prototype -> [sources]); a source has
    exactly one entry. A prototype with a single source cannot be told from it, so the pair
    folds to the smaller of the two: skeletons stay equal exactly when UTS #39's are."""
    entries: dict[str, list[str]] = {}
    for key, homoglyphs in confusables_data.items():
        found = entries.setdefault(key.translate(_BIDI_MARKS), [])
        found.extend(str(glyph["c"]).translate(_BIDI_MARKS) for glyph in homoglyphs)
    prototypes: dict[str, str] = {}
    for char, targets in entries.items():
        if len(char) != 1 or len(targets) != 1 or not targets[0]:
            continue
        target = targets[0]
        if len(target) > 1 or len(entries.get(target, ())) > 1:
            prototypes[char] = target
        else:
            prototypes[char] = prototypes[target] = min(char, target)
    return prototypes


@cache
def _prototype_table() -> dict[int, str]:
    """`_prototypes` as a `str.translate` table: a name's characters are mapped in C (a
    character at a time in Python was most of a name key's time)."""
    return {ord(char): target for char, target in _prototypes().items()}


def skeleton(text: str) -> str:
    """UTS #39 skeleton: NFD, each character replaced by its prototype, NFD again."""
    mapped = unicodedata.normalize("NFD", text).translate(_prototype_table())
    return unicodedata.normalize("NFD", mapped)


@lru_cache(maxsize=4096)
def fold(normalised: str) -> str:
    """The key two normalised names are compared by: their skeleton, case folded (so a digit
    zero, whose prototype is a capital O, meets a small o), and folded again."""
    return skeleton(skeleton(normalised).casefold())


# Characters that show nothing (zero-width space and joiners, soft hyphen, word joiner, the
# combining grapheme joiner, variation selectors): in a name they made word breaks, so
# "Ac<ZWSP>me" looked like "Acme" and keyed as "ac" (found in review).
_INVISIBLE = re.compile("[\u034f\u180b-\u180f\ufe00-\ufe0f\U000e0100-\U000e01ef]")


def _visible(text: str) -> str:
    text = _INVISIBLE.sub("", text)
    return "".join(char for char in text if unicodedata.category(char) != "Cf")


def _plain_capital(char: str) -> str:
    """A capital of another script that looks like a Latin one, as that Latin capital (Cyrillic
    A, U+0410, or Greek Rho, U+03A1: lower-cased first, they became letters whose skeleton is
    not Latin, so ACME in Cyrillic capitals dodged the Latin ACME); any other character as it
    is."""
    if char.isascii() or not char.isupper():
        return char
    return _latin_capitals().get(skeleton(char), char)


@cache
def _latin_capitals() -> dict[str, str]:
    """Each Latin capital by its skeleton (a capital I's is a small l: the Latin capital, not
    its skeleton, is what a look-alike reads as, so "Inc" in Cyrillic is still "inc")."""
    return {skeleton(char): char for char in string.ascii_uppercase}


def normalise_name(value: str | None) -> str:
    """'Northwind Traders, Ltd.' -> 'northwind traders' (case, accents, punctuation, legal form).
    Letters of any script are kept; NFKC first, so full-width and styled letters read plainly;
    invisible characters are dropped and look-alike capitals read as the Latin ones."""
    if not value:
        return ""
    return _normalised(_visible(value), _plain_capital)


def _normalised(value: str, capital: Callable[[str], str] | None) -> str:
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", value))
    if not text.isascii():  # no ASCII character is a combining mark
        text = "".join(char for char in text if not unicodedata.combining(char))
        if capital is not None:
            text = "".join(capital(char) for char in text)
    text = text.casefold()
    # Dots join abbreviations ("S.A.", "Inc.") rather than separate words.
    text = text.replace("&", " and ").replace(".", "")
    words = re.sub(r"[\W_]+", " ", text).split()
    while len(words) > 1 and fold(words[-1]) in _FOLDED_LEGAL_SUFFIXES:
        words.pop()
    return " ".join(words)


def name_key(value: str | None) -> str:
    """A blocking key for candidate lookup: the first word of the folded normalised name."""
    return _key(normalise_name(value))


def _key(normalised: str) -> str:
    folded = fold(normalised)
    return folded.split(" ", 1)[0] if folded else ""


def _former_key(name: str, key: str) -> str | None:
    """The key the former normalisation (invisible characters as word breaks, capitals lower-
    cased before folding) gave the name whose key is now `key`, when it differs: registrations
    and opportunities stored before hold it, so the lookups find them by it too. An ASCII name
    has neither, so its key never differed."""
    if name.isascii():
        return None
    former = _key(_normalised(name, None))
    return None if former == key else former


# A block's names come back with every decision on a customer of that block: their keys are kept
# (a few hundred bytes a name).
@lru_cache(maxsize=1 << 15)
def folded_name(name: str) -> str:
    """The key a company name is compared by: normalised, then folded."""
    return fold(normalise_name(name))


def name_similarity(a: str | None, b: str | None) -> float:
    """0..1 similarity of two company names after normalisation and folding."""
    return _similarity(fold(normalise_name(a)), fold(normalise_name(b)))


_FOLDED_LEGAL_SUFFIXES = frozenset(fold(suffix) for suffix in _LEGAL_SUFFIXES)


def _similarity(left: str, right: str) -> float:
    """difflib's ratio, the higher of its two orders: it is not symmetric, and whether a second
    registration met the first depended on which came first (found in review)."""
    if not left or not right:
        return 0.0
    if left == right:
        return 1.0
    either = max(
        SequenceMatcher(None, left, right).ratio(), SequenceMatcher(None, right, left).ratio()
    )
    return round(either, 4)


# How far below the threshold the first look still passes a pair (in rapidfuzz's 0-100): the
# exact ratio is rounded to four places, and the two are computed in floating point.
_REACH_MARGIN = 0.01


def _alike(left: str, right: str, threshold: float) -> float | None:
    """The similarity of two folded names when it is at least `threshold`, else None. A first
    look in C (rapidfuzz's Indel ratio: twice the longest common subsequence over both lengths)
    is never below difflib's ratio, whose matching blocks are one common subsequence; a pair it
    puts out of reach cannot reach the threshold, and only the others are measured exactly."""
    reach = threshold * 100 - _REACH_MARGIN
    if left and right and fuzz.ratio(left, right, score_cutoff=max(reach, 0)) < reach:
        return None
    similarity = _similarity(left, right)
    return similarity if similarity >= threshold else None


@dataclass(frozen=True)
class Customer:
    """A customer as the rules compare it, parsed once where it enters: the name as given, its
    normalised form and blocking key, the registrable domain and the country."""

    name: str
    domain: str | None  # the registrable domain (normalised), None when there is none
    country: str | None
    normalised_name: str
    name_key: str  # the first word of the folded normalised name: the fuzzy lookup's block
    former_name_key: str | None = None  # the key rows stored before may hold (`_former_key`)

    @classmethod
    def parse(
        cls, name: str | None, domain: str | None = None, country: str | None = None
    ) -> Customer:
        normalised = normalise_name(name)
        key = _key(normalised)
        return cls(
            name=name or "",
            domain=normalise_domain(domain),
            country=country.upper() if country else None,
            normalised_name=normalised,
            name_key=key,
            former_name_key=_former_key(name, key) if name else None,
        )

    def matches(self, other: Customer, threshold: float) -> tuple[str, float] | None:
        """How `other` is the same customer: ("domain", 1.0) on the same registrable domain,
        ("name", similarity) when the names are at least `threshold` alike, else None."""
        if self.domain and self.domain == other.domain:
            return "domain", 1.0
        similarity = _alike(fold(self.normalised_name), fold(other.normalised_name), threshold)
        return None if similarity is None else ("name", similarity)

    def alike_names(self, names: Iterable[str], threshold: float) -> set[str]:
        """Which of `names` (as given) are at least `threshold` alike this customer's name, as
        `matches` compares names: for a name block of thousands, without parsing their domains."""
        mine = fold(self.normalised_name)
        return {name for name in names if _alike(mine, folded_name(name), threshold) is not None}
