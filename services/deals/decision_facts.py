"""What a registration decision is read from, in one statement: the requesting partner as
projected, the holding registrations and the open direct opportunities that may be the
customer's, with the holders' partner types.

A decision's time is mostly round trips to Postgres (each lookup executes in a few hundredths
of a millisecond), so the lookups that were five statements are one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from services.deals.domain.customers import Customer, former_domain_key
from services.deals.domain.partner_standing import holds_customers
from services.deals.domain.rules import ExistingRegistration, OpenOpportunity, PartnerView
from shared.db import Connection
from shared.events.partners import PartnerStatus
from shared.events.registrations import RegistrationStatus

# Each branch of a UNION is one index lookup (partial indexes on the holding statuses / open
# deals), so the cost grows with the candidates for one customer, not with the tables:
# tests/integration/test_deals_query_plans.py checks the plan. Every holding registration on
# the customer comes back however old (the partner's own are repeats whenever submitted: an
# extension outlives the window) with `in_window`: as a candidate it counts from its
# submission inside the window, or while its stored protection lasts. `party_known`: the
# holder is in the partner projection (its type, possibly none, is known). `$5`: the key the
# former domain rule gave this customer's domain (`former_domain_key`), under which
# registrations stored before the Public Suffix List hold it; such a key is shared by unrelated
# customers (com.tr), so holding rows are compared by the domain their partner gave (inputs).
# `$6`: the requester's own registrations that expired since then still cool the customer down
# (domain/cooldown.py): a few rows of one partner, by a partial index (migration 0016); not
# those its own expulsion (or rejection) ended, which it did not let run out (found in review:
# a partner reinstated on appeal was locked out of its former customers, others not).
# `$8`: the key the former name normalisation gave the name (`Customer.former_name_key`), under which
# rows stored before it hold it. `party_status`: the holder's projected status; an ended
# partner's registration holds nothing (domain/partner_standing.py).
# Each holding registration's domain as its partner gave it (the rules parse it): the same in
# every branch, so a registration found by two of them is one row.
_AS_ASKED_DOMAIN = "COALESCE(inputs -> 'request' ->> 'customer_domain', customer_domain)"
DECISION_FACTS_SQL = f"""
WITH holding AS (
    SELECT registration_id, partner_id, customer_name, {_AS_ASKED_DOMAIN} AS customer_domain,
        products, status, submitted_at, expires_at
    FROM registrations
    WHERE status IN ('submitted', 'approved', 'pending_review') AND customer_domain = $1
    UNION
    SELECT registration_id, partner_id, customer_name, {_AS_ASKED_DOMAIN}, products, status,
        submitted_at, expires_at
    FROM registrations
    WHERE status IN ('submitted', 'approved', 'pending_review') AND customer_domain = $5
    UNION
    SELECT registration_id, partner_id, customer_name, {_AS_ASKED_DOMAIN}, products, status,
        submitted_at, expires_at
    FROM registrations
    WHERE status IN ('submitted', 'approved', 'pending_review') AND name_key = $2
    UNION
    SELECT registration_id, partner_id, customer_name, {_AS_ASKED_DOMAIN}, products, status,
        submitted_at, expires_at
    FROM registrations
    WHERE status IN ('submitted', 'approved', 'pending_review') AND name_key = $8
), open_direct AS (
    SELECT deal_key, owner, customer_name, customer_domain, created_at FROM crm_deals
    WHERE status = 'open' AND NOT deleted AND owner IS NOT NULL AND customer_domain = $1
    UNION
    SELECT deal_key, owner, customer_name, customer_domain, created_at FROM crm_deals
    WHERE status = 'open' AND NOT deleted AND owner IS NOT NULL AND name_key = $2
    UNION
    SELECT deal_key, owner, customer_name, customer_domain, created_at FROM crm_deals
    WHERE status = 'open' AND NOT deleted AND owner IS NOT NULL AND name_key = $8
)
SELECT 'registration' AS kind, h.registration_id AS id, h.partner_id AS party,
    h.customer_name, h.customer_domain, h.products, h.status, h.submitted_at AS at,
    h.expires_at, holder.partner_type AS party_type, holder.partner_id IS NOT NULL AS party_known,
    h.submitted_at >= to_timestamp($3) OR h.expires_at > to_timestamp($7) AS in_window,
    NULL AS tier, NULL::text[] AS regions, holder.status AS party_status
FROM holding AS h LEFT JOIN partners AS holder ON holder.partner_id = h.partner_id
UNION ALL
SELECT 'opportunity', deal_key, owner, customer_name, customer_domain, NULL, NULL, created_at,
    NULL, NULL, NULL, true, NULL, NULL, NULL
FROM open_direct
UNION ALL
SELECT 'partner', partner_id, partner_id, NULL, NULL, products, status, NULL, NULL,
    partner_type, true, NULL, tier, regions, NULL
FROM partners WHERE partner_id = $4
UNION ALL
SELECT 'expired', registration_id, partner_id, customer_name, {_AS_ASKED_DOMAIN}, products,
    status, submitted_at, expires_at, NULL, NULL, false, NULL, NULL, NULL
FROM registrations AS r
WHERE status = 'expired' AND partner_id = $4 AND expires_at > to_timestamp($6)
    -- per row, by the ledger's index (a few rows of one partner; an anti-join read it whole)
    AND (SELECT l.seq FROM registration_ledger AS l
         WHERE l.registration_id = r.registration_id AND l.status = 'expired'
           AND l.evidence ? 'partner_change' LIMIT 1) IS NULL
ORDER BY id
"""


@dataclass(frozen=True)
class DecisionFacts:
    partner: PartnerView | None
    """The requester as projected (None: deals never heard of it)."""
    own_live: list[ExistingRegistration]
    """The requester's holding registrations on the customer (a repeat is refused)."""
    own_expired: list[ExistingRegistration]
    """The requester's registrations that expired since the cooldown's start (any customer:
    the rules match it)."""
    registrations: list[ExistingRegistration]
    """Holding registrations that count as conflict candidates (the requester's too)."""
    opportunities: list[OpenOpportunity]
    holder_types: dict[str, str | None]
    """The partner type of each partner holding a candidate (partners deals never heard of are
    left out: their type is unknown)."""


async def load_decision_facts(
    conn: Connection,
    partner_id: str,
    customer: Customer,
    since: datetime,
    expired_since: datetime,
    at: datetime,
) -> DecisionFacts:
    """The facts for `partner_id` registering `customer` at `at`, with candidates submitted
    since `since` (or still protected at `at`: the request's own moment, which the rules judge
    by, not the database's clock) and the partner's registrations expired since
    `expired_since`. An ended partner's registration is no candidate: it protects nothing."""
    rows = await conn.fetch(
        DECISION_FACTS_SQL,
        customer.domain,
        customer.name_key,
        since.timestamp(),
        partner_id,
        former_domain_key(customer.domain),
        expired_since.timestamp(),
        at.timestamp(),
        customer.former_name_key,
    )
    partner: PartnerView | None = None
    own_live: list[ExistingRegistration] = []
    own_expired: list[ExistingRegistration] = []
    registrations: list[ExistingRegistration] = []
    opportunities: list[OpenOpportunity] = []
    holder_types: dict[str, str | None] = {}
    for row in rows:
        if row["kind"] == "partner":
            partner = PartnerView(
                row["id"],
                PartnerStatus(row["status"]),
                row["tier"],
                frozenset(row["regions"]),
                frozenset(row["products"]),
                row["party_type"],
            )
            continue
        if row["kind"] == "opportunity":
            created_at = row["at"] or datetime.min.replace(tzinfo=UTC)
            opportunities.append(
                OpenOpportunity(
                    row["id"],
                    row["party"],
                    row["customer_name"],
                    row["customer_domain"],
                    created_at,
                )
            )
            continue
        registration = ExistingRegistration(
            row["id"],
            row["party"],
            row["customer_name"],
            row["customer_domain"],
            frozenset(row["products"]),
            RegistrationStatus(row["status"]),
            row["at"],
            row["expires_at"],
        )
        if row["kind"] == "expired":
            own_expired.append(registration)
            continue
        if registration.partner_id == partner_id:
            own_live.append(registration)
        if row["in_window"] and holds_customers(row["party_status"]):
            registrations.append(registration)
            if row["party_known"]:
                holder_types[registration.partner_id] = row["party_type"]
    return DecisionFacts(partner, own_live, own_expired, registrations, opportunities, holder_types)
