"""CRM payloads as each upstream source delivers them, for tests, the demo story and the
benchmark. Each builder starts from the source's documented shape (the samples in
`tests/fixtures/samples`) and sets what a caller varies. Deliveries are signed as each real
sender signs them (HubSpot's v3 signature, Standard Webhooks' own library for the Salesforce
relay, EventBridge's API-key header, Partner Center's RSA signature), with the committed local
credentials a deals process accepts in development mode."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from standardwebhooks import Webhook

from services.deals.adapters.salesforce import RECORD_FIELDS as SALESFORCE_RECORD_FIELDS
from services.deals.settings import (
    LOCAL_AWS_ACE_API_KEY,
    LOCAL_HUBSPOT_CLIENT_SECRET,
    LOCAL_HUBSPOT_PORTAL_IDS,
    LOCAL_SALESFORCE_WEBHOOK_SECRET,
)
from tests.support.certificates import issue
from tests.support.local_http import LocalServer, QuietHandler

SAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "samples"


@cache
def _sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def sample(name: str) -> Any:
    """A fresh copy of one of the stored upstream samples (`hubspot_deal_webhook.json`, ...)."""
    return copy.deepcopy(_sample(name))


def hubspot_deal_webhook() -> tuple[int, list[dict[str, Any]]]:
    """The stored HubSpot webhook batch, about a deal of its own (a new object id, event ids no
    other batch has used): the deal's id and the batch."""
    batch: list[dict[str, Any]] = sample("hubspot_deal_webhook.json")
    deal_id = int(uuid.uuid4().int % 10**12)
    for event in batch:
        event["objectId"] = deal_id
        event["eventId"] = int(f"{event['eventId']}{deal_id % 10**6}")
    return deal_id, batch


def salesforce_cdc(record_id: str, change: str, at: datetime, fields: dict[str, Any]) -> Any:
    """An Opportunity Change Data Capture message as Salesforce delivers it: `change` is
    CREATE | UPDATE | DELETE | UNDELETE, `fields` the changed Opportunity fields."""
    return {
        "schema": "IeRuaY6cbI_HsV8Rv1Mc5g",
        "payload": {
            "ChangeEventHeader": {
                "entityName": "Opportunity",
                "recordIds": [record_id],
                "changeType": change,
                "transactionKey": uuid.uuid4().hex,
                "sequenceNumber": 1,
                "commitTimestamp": int(at.timestamp() * 1000),
                "changedFields": sorted(fields),
            },
            **fields,
        },
        "event": {"replayId": int(at.timestamp() * 1000)},
    }


def hubspot_property_change(
    deal_id: int, name: str, value: str, at: datetime, *, event_id: int | None = None
) -> dict[str, Any]:
    """One `deal.propertyChange` webhook event as HubSpot sends it (a batch is a list)."""
    event: dict[str, Any] = dict(_sample("hubspot_deal_webhook.json")[1])
    event.update(
        eventId=event_id if event_id is not None else uuid.uuid4().int % 10**9,
        objectId=deal_id,
        propertyName=name,
        propertyValue=value,
        occurredAt=int(at.timestamp() * 1000),
    )
    return event


def salesforce_won_deal(record_id: str, amount: Decimal, partner_id: str) -> Any:
    """A Salesforce CDC message: an opportunity created closed won today (30 days after it
    was opened), on its own account, naming the referring partner."""
    at = datetime.now(UTC)
    return salesforce_cdc(
        record_id,
        "CREATE",
        at,
        {
            "Name": f"Deal {record_id}",
            "StageName": "Closed Won",
            "Amount": float(amount),
            "CurrencyIsoCode": "USD",
            "CloseDate": at.date().isoformat(),
            "Account_Name__c": f"Account {record_id} Holdings",
            "Account_Website__c": f"https://{record_id.lower()}.example",
            "Partner_Account__c": partner_id,
            "CreatedDate": (at - timedelta(days=30)).isoformat().replace("+00:00", "Z"),
        },
    )


def hubspot_company_association(
    deal_id: int, company_id: int, at: datetime, **fields: Any
) -> dict[str, Any]:
    """One `deal.associationChange` event (a company associated with the deal) as HubSpot
    sends it; `fields` add to it or override it."""
    return {
        **hubspot_property_change(deal_id, "dealstage", "x", at),
        "subscriptionType": "deal.associationChange",
        "associationType": "DEAL_TO_COMPANY",
        "fromObjectId": deal_id,
        "toObjectId": company_id,
        **fields,
    }


def aws_ace_opportunity(
    opportunity_id: str, *, stage: str = "Technical Validation", **project: Any
) -> Any:
    """An AWS Partner Central `GetOpportunity` answer wrapped with its EventBridge event, as a
    fetcher relays it; `project` overrides fields of its `Project`."""
    payload = sample("aws_ace_opportunity.json")
    payload["event"]["detail"]["opportunity"]["identifier"] = opportunity_id
    payload["getOpportunity"]["Id"] = opportunity_id
    payload["getOpportunity"]["LifeCycle"]["Stage"] = stage
    payload["getOpportunity"]["Project"].update(project)
    return payload


def microsoft_referral(referral_id: str, *, status: str = "Active", **details: Any) -> Any:
    """A Partner Center referral webhook with the referral it names; `details` overrides
    fields of its `Details`."""
    payload = sample("microsoft_referral.json")
    payload["referral"]["Id"] = referral_id
    payload["referral"]["Status"] = status
    payload["referral"]["Details"].update(details)
    return payload


# Where Partner Center's webhook documentation says a referral event's resource is.
PARTNER_CENTER_EVENT_REFERRALS = "https://api.partnercenter.microsoft.com/engagements/v1/referrals"


def microsoft_event(
    kind: str, referral_id: str, at: datetime, resource_uri: str | None = None
) -> dict[str, Any]:
    """A Partner Center webhook event as it is delivered: the event's name and the URI of the
    resource it is about (by default the referral's, as the documentation writes it), no
    referral."""
    return {
        "EventName": kind,
        "ResourceUri": resource_uri or f"{PARTNER_CENTER_EVENT_REFERRALS}/{referral_id}",
        "ResourceName": kind.split("-", 1)[0],
        "AuditUri": None,
        "ResourceChangeUtcDate": at.isoformat(),
    }


# ---- signing, as each source (or its relay) signs a delivery

# What the tests configure as DEALS_PUBLIC_BASE_URL: the URL HubSpot is told to call.
PUBLIC_BASE_URL = "https://deals.pollinate.test"
HUBSPOT_PORTAL = int(LOCAL_HUBSPOT_PORTAL_IDS)


def hubspot_headers(
    body: bytes,
    uri: str = f"{PUBLIC_BASE_URL}/crm/hubspot",
    *,
    secret: str = LOCAL_HUBSPOT_CLIENT_SECRET,
    at: datetime | None = None,
) -> dict[str, str]:
    """HubSpot's v3 signature: base64 HMAC-SHA256 (the app's client secret) of method, URI,
    body and the request timestamp (epoch milliseconds)."""
    timestamp = str(int((at or datetime.now(UTC)).timestamp() * 1000))
    message = b"POST" + uri.encode() + body + timestamp.encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return {
        "X-HubSpot-Signature-v3": base64.b64encode(digest).decode(),
        "X-HubSpot-Request-Timestamp": timestamp,
        "content-type": "application/json",
    }


def salesforce_headers(
    body: bytes, *, secret: str = LOCAL_SALESFORCE_WEBHOOK_SECRET, at: datetime | None = None
) -> dict[str, str]:
    """What the CDC relay sends: a Standard Webhooks signature made by the specification's
    own library."""
    message_id = f"msg_{uuid.uuid4().hex}"
    moment = at or datetime.now(UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, moment, body.decode()),
        "content-type": "application/json",
    }


def aws_ace_headers(
    *, key: str = LOCAL_AWS_ACE_API_KEY, header: str = "x-api-key"
) -> dict[str, str]:
    """What an EventBridge API destination sends with an API-key connection."""
    return {header: key, "content-type": "application/json"}


@dataclass
class MicrosoftSigner:
    """Plays Partner Center: a CA whose organisation is Microsoft's, a signing certificate it
    issued, and RSA signatures of bodies with that certificate's key."""

    ca_pem: bytes
    certificate_der: bytes
    key: rsa.RSAPrivateKey

    @classmethod
    def create(cls, organization: str = "Microsoft Corporation") -> MicrosoftSigner:
        ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ca_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                x509.NameAttribute(NameOID.COMMON_NAME, "Test Partner Center CA"),
            ]
        )
        ca = issue(
            ca_name,
            ca_name,
            ca_key,
            ca_key,
            extensions=[(x509.BasicConstraints(ca=True, path_length=0), True)],
        )
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pcnotifications.test")])
        leaf = issue(leaf_name, ca_name, key, ca_key)
        return cls(
            ca.public_bytes(serialization.Encoding.PEM),
            leaf.public_bytes(serialization.Encoding.DER),
            key,
        )

    def headers(
        self, body: bytes, certificate_url: str, algorithm: str = "rsa-sha256"
    ) -> dict[str, str]:
        """Partner Center's callback headers: the body's RSA (PKCS#1 v1.5) signature."""
        digest = {"rsa-sha256": hashes.SHA256(), "rsa-sha512": hashes.SHA512()}[algorithm]
        signature = self.key.sign(body, padding.PKCS1v15(), digest)
        return {
            "Authorization": f"Signature {base64.b64encode(signature).decode()}",
            "X-MS-Certificate-Url": certificate_url,
            "X-MS-Signature-Algorithm": algorithm,
            "content-type": "application/json",
        }


class CertificateHost(LocalServer):
    """A local HTTP server playing Microsoft's certificate host: serves the files it is given."""

    def __init__(self) -> None:
        files: dict[str, bytes] = {}
        requested: list[str] = []
        self.files = files
        self.requested = requested  # every path asked for, in order

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                requested.append(self.path)
                content = files.get(self.path)
                self.send_response(200 if content is not None else 404)
                self.send_header("Content-Length", str(len(content or b"")))
                self.end_headers()
                self.wfile.write(content or b"")

        super().__init__(Handler)
        self.origin = self.url

    def serve(self, path: str, content: bytes) -> str:
        """Serve `content` at `path`; answers its URL."""
        self.files[path] = content
        return self.origin + path


@dataclass
class CrmSenders:
    """Signs a delivery to any /crm/* route as its real sender does."""

    microsoft: MicrosoftSigner
    certificate_url: str

    def headers(self, route: str, body: bytes) -> dict[str, str]:
        if route.endswith("/crm/hubspot"):
            return hubspot_headers(body)
        if route.endswith("/crm/salesforce"):
            return salesforce_headers(body)
        if route.endswith("/crm/aws-ace"):
            return aws_ace_headers()
        if route.endswith("/crm/microsoft"):
            return self.microsoft.headers(body, self.certificate_url)
        raise ValueError(f"not a CRM route: {route}")

    def service_env(self, issuers_file: str, origin: str) -> dict[str, str]:
        """What a deals process needs to accept these senders."""
        return {
            "DEALS_PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            "DEALS_MICROSOFT_CERTIFICATE_ORIGINS": origin,
            "DEALS_MICROSOFT_CERTIFICATE_ISSUERS": issuers_file,
        }


def salesforce_delivery(
    messages: Any, *, secret: str = LOCAL_SALESFORCE_WEBHOOK_SECRET
) -> dict[str, Any]:
    """A CDC delivery as the relay POSTs it: httpx request arguments (body and signature)."""
    body = json.dumps(messages).encode()
    return {"content": body, "headers": salesforce_headers(body, secret=secret)}


# ---- the CRMs' own APIs, played by local HTTP servers speaking their documented shapes


class SalesforceServer(LocalServer):
    """Plays a Salesforce org's REST API (v61.0): `GET .../sobjects/Opportunity/<id>` (the
    record, or 404 `[{"errorCode": "NOT_FOUND"}]`), `GET .../queryAll?q=<SOQL>` answering the
    records whose SystemModstamp is at or after the query's, `page_size` at a time with
    `nextRecordsUrl` and `done`; a wrong bearer token is 401 `INVALID_SESSION_ID`; while
    `limited` is above zero each request is 403 `REQUEST_LIMIT_EXCEEDED` (and counts down).
    `requests` lists the paths asked for. With `multi_currency` False it is an org with multiple
    currencies off (Salesforce's default): its records have no CurrencyIsoCode, and a read
    naming it is 400 `INVALID_FIELD`."""

    TOKEN = "00Dxx0000000001!local-test-token"

    def __init__(self, page_size: int = 2, *, multi_currency: bool = True) -> None:
        self.multi_currency = multi_currency
        self.records: dict[str, dict[str, Any]] = {}
        self.requests: list[str] = []
        self.limited = 0
        self.down = False  # answers 503 while True (an outage)
        self.failing: set[str] = set()  # records whose update answers 500 (as Salesforce's
        # UNKNOWN_EXCEPTION does when a trigger or flow on the record throws)
        self.page_size = page_size
        self.updates: list[tuple[str, dict[str, Any]]] = []
        self.accounts: dict[str, dict[str, Any]] = {}
        cursors: dict[str, list[dict[str, Any]]] = {}
        server = self

        class Handler(QuietHandler):
            def do_PATCH(self) -> None:
                server.requests.append(self.path)
                if server.down:
                    return self._answer(
                        503, [{"message": "Service Unavailable", "errorCode": "SERVER_UNAVAILABLE"}]
                    )
                if self.headers.get("Authorization") != f"Bearer {server.TOKEN}":
                    return self._answer(
                        401,
                        [
                            {
                                "message": "Session expired or invalid",
                                "errorCode": "INVALID_SESSION_ID",
                            }
                        ],
                    )
                fields = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                record_id = unquote(urlsplit(self.path).path.rsplit("/", 1)[1])
                if record_id in server.failing:
                    return self._answer(
                        500,
                        [
                            {
                                "message": "An unexpected error occurred. Please include this "
                                "ErrorId if you contact support: 1234567890-12345 (-987654321)",
                                "errorCode": "UNKNOWN_EXCEPTION",
                            }
                        ],
                    )
                unknown = [f for f in fields if f.startswith("Unknown")]
                if record_id not in server.records or unknown:
                    return self._answer(
                        400 if unknown else 404,
                        [
                            {
                                "message": f"No such column '{unknown[0]}'"
                                if unknown
                                else "The requested resource does not exist",
                                "errorCode": "INVALID_FIELD" if unknown else "NOT_FOUND",
                            }
                        ],
                    )
                server.records[record_id].update(fields)
                server.updates.append((record_id, fields))
                self.send_response(204)
                self.end_headers()

            def do_GET(self) -> None:
                server.requests.append(self.path)
                if self.headers.get("Authorization") != f"Bearer {server.TOKEN}":
                    return self._answer(
                        401,
                        [
                            {
                                "message": "Session expired or invalid",
                                "errorCode": "INVALID_SESSION_ID",
                            }
                        ],
                    )
                if server.limited > 0:
                    server.limited -= 1
                    return self._answer(
                        403,
                        [
                            {
                                "message": "TotalRequests Limit exceeded.",
                                "errorCode": "REQUEST_LIMIT_EXCEEDED",
                            }
                        ],
                    )
                parts = urlsplit(self.path)
                if not server.multi_currency and "CurrencyIsoCode" in unquote(parts.query):
                    return self._answer(
                        400,
                        [
                            {
                                "message": "No such column 'CurrencyIsoCode' on entity "
                                "'Opportunity'. If you are attempting to use a custom field, "
                                "be sure to append the '__c' after the custom field name.",
                                "errorCode": "INVALID_FIELD",
                            }
                        ],
                    )
                if "/sobjects/Opportunity/" in parts.path:
                    record = server.records.get(unquote(parts.path.rsplit("/", 1)[1]))
                    if record is None or record.get("IsDeleted"):
                        return self._answer(
                            404,
                            [
                                {
                                    "message": "The requested resource does not exist",
                                    "errorCode": "NOT_FOUND",
                                }
                            ],
                        )
                    return self._answer(200, record)
                if parts.path.endswith("/queryAll"):
                    soql = parse_qs(parts.query)["q"][0]
                    rows = server.query(soql)
                    cursor = uuid.uuid4().hex[:12]
                    cursors[cursor] = rows
                    return self._page(cursor, 0)
                if "/query/" in parts.path:
                    cursor, offset = parts.path.rsplit("/", 1)[1].rsplit("-", 1)
                    return self._page(cursor, int(offset))
                return self._answer(404, [{"message": "not found", "errorCode": "NOT_FOUND"}])

            def _page(self, cursor: str, offset: int) -> None:
                rows = cursors[cursor]
                page = rows[offset : offset + server.page_size]
                done = offset + server.page_size >= len(rows)
                body: dict[str, Any] = {"totalSize": len(rows), "done": done, "records": page}
                if not done:
                    body["nextRecordsUrl"] = (
                        f"/services/data/v61.0/query/{cursor}-{offset + server.page_size}"
                    )
                self._answer(200, body)

            def _answer(self, status: int, body: Any) -> None:
                self.send_json(status, body, "application/json;charset=UTF-8")

        super().__init__(Handler)

    def query(self, soql: str) -> list[dict[str, Any]]:
        """The rows of the three queries deals makes: an Account's `MasterRecordId` by id, an
        Account's Opportunities, and the Opportunities changed since a `SystemModstamp`."""
        if " FROM Account WHERE Id = " in soql:
            account = self.accounts.get(soql.rsplit("'", 2)[1])
            return [] if account is None else [account]
        if " WHERE AccountId = " in soql:
            account_id = soql.split("AccountId = '", 1)[1].split("'", 1)[0]
            return sorted(
                (r for r in self.records.values() if r.get("AccountId") == account_id),
                key=lambda r: str(r["Id"]),
            )
        since = soql.split("SystemModstamp >= ", 1)[1].split(" ", 1)[0]
        return sorted(
            (
                r
                for r in self.records.values()
                if r["SystemModstamp"] >= since.replace("Z", ".000+0000")
            ),
            key=lambda r: str(r["SystemModstamp"]),
        )

    def merge_accounts(self, master: str, losers: list[str]) -> None:
        """A merge as Salesforce does it: the losers deleted with `MasterRecordId` set to the
        master, their Opportunities re-parented to it without touching their modification
        stamps (a merge fires no change on re-parented children)."""
        for account in (master, *losers):
            self.accounts.setdefault(
                account,
                {"attributes": {"type": "Account"}, "Id": account, "MasterRecordId": None},
            )
        for loser in losers:
            self.accounts[loser].update(MasterRecordId=master, IsDeleted=True)
            for record in self.records.values():
                if record.get("AccountId") == loser:
                    record["AccountId"] = master

    def put(self, record_id: str, at: datetime, **fields: Any) -> dict[str, Any]:
        """Store the Opportunity as the org holds it now (REST shape: `attributes`, times as
        `2026-03-02T09:00:00.000+0000`, every queried field present, null when empty)."""
        stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        record = {
            "attributes": {
                "type": "Opportunity",
                "url": f"/services/data/v61.0/sobjects/Opportunity/{record_id}",
            },
            **{
                field: None
                for field in SALESFORCE_RECORD_FIELDS
                if self.multi_currency or field != "CurrencyIsoCode"
            },
            "Id": record_id,
            "IsDeleted": False,
            "CreatedDate": stamp,
            "LastModifiedDate": stamp,
            "SystemModstamp": stamp,
            **fields,
        }
        self.records[record_id] = record
        return record

    def env(self) -> dict[str, str]:
        """What a deals process needs to fetch from this org."""
        return {
            "DEALS_SALESFORCE_INSTANCE_URL": self.url,
            "DEALS_SALESFORCE_ACCESS_TOKEN": self.TOKEN,
            "DEALS_RESYNC_EVERY_SECONDS": "0.2",
        }


class _JsonServer(LocalServer):
    """A local HTTP server answering JSON, for the partner programmes' APIs below."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        owner = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                self._serve(None)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                self._serve(json.loads(self.rfile.read(length) or b"null"))

            def do_PATCH(self) -> None:
                self.do_POST()

            def _serve(self, body: Any) -> None:
                seen = {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": body,
                }
                owner.requests.append(seen)
                self.send_json(*owner.answer(seen))

        super().__init__(Handler)

    def answer(self, request: dict[str, Any]) -> tuple[int, Any]:
        raise NotImplementedError


_SIGV4 = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=[A-Z0-9]{16,128}/\d{8}/[a-z0-9-]+/partnercentral-selling/"
    r"aws4_request, SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}$"
)


class AcePartnerCentral(_JsonServer):
    """Plays the AWS Partner Central Selling API (AWS JSON 1.0): `ListOpportunities` (filter
    `LastModifiedDate.AfterLastModifiedDate`: on or after; sort ascending; `page_size` a page
    with `NextToken`) and `GetOpportunity` (the opportunity, or 404
    `ResourceNotFoundException`), `UpdateOpportunity` (the whole opportunity, at the
    `LastModifiedDate` read). Requests must carry a Signature Version 4 `Authorization`
    of the right shape, `X-Amz-Date` and the JSON 1.0 content type (400
    `IncompleteSignatureException` / `UnknownOperationException` otherwise)."""

    def __init__(self, page_size: int = 2) -> None:
        super().__init__()
        self.page_size = page_size
        self.opportunities: dict[str, dict[str, Any]] = {}
        self.throttled = 0
        self.down = False  # answers 500 InternalServerException while True
        self.conflicts = 0  # the next updates answer ConflictException (a writer in between)
        self.updates: list[tuple[str, dict[str, Any]]] = []
        self.vanished: set[str] = set()  # listed, but GetOpportunity answers 404 (gone since)

    def put(self, opportunity_id: str, modified: datetime, **project: Any) -> None:
        opportunity = sample("aws_ace_opportunity.json")["getOpportunity"]
        opportunity["Id"] = opportunity_id
        opportunity["LastModifiedDate"] = modified.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        opportunity["Project"].update(project)
        self.opportunities[opportunity_id] = opportunity

    def answer(self, request: dict[str, Any]) -> tuple[int, Any]:
        headers = {k.lower(): v for k, v in request["headers"].items()}
        if not _SIGV4.match(headers.get("authorization", "")) or "x-amz-date" not in headers:
            return 400, {"__type": "IncompleteSignatureException", "message": "bad signature"}
        if headers.get("content-type") != "application/x-amz-json-1.0":
            return 400, {"__type": "SerializationException", "message": "content type"}
        if self.throttled > 0:
            self.throttled -= 1
            return 400, {"__type": "ThrottlingException", "message": "Rate exceeded"}
        target, body = headers.get("x-amz-target", ""), request["body"]
        if self.down:
            return 500, {"__type": "InternalServerException", "message": "try again"}
        if target == "AWSPartnerCentralSelling.UpdateOpportunity":
            return self._update(body)
        if target == "AWSPartnerCentralSelling.GetOpportunity":
            found = self.opportunities.get(body["Identifier"])
            if found is None or body["Identifier"] in self.vanished:
                return 404, {"__type": "ResourceNotFoundException", "message": "not found"}
            return 200, found
        if target != "AWSPartnerCentralSelling.ListOpportunities":
            return 400, {"__type": "UnknownOperationException", "message": target}
        after = body.get("LastModifiedDate", {}).get("AfterLastModifiedDate", "")
        rows = sorted(
            (o for o in self.opportunities.values() if o["LastModifiedDate"] >= after),
            key=lambda o: o["LastModifiedDate"],
        )
        offset = int(body.get("NextToken", "0") or "0")
        size = min(self.page_size, body.get("MaxResults", 100))
        page = rows[offset : offset + size]
        answer: dict[str, Any] = {
            "OpportunitySummaries": [
                {"Catalog": "AWS", "Id": o["Id"], "LastModifiedDate": o["LastModifiedDate"]}
                for o in page
            ]
        }
        if offset + size < len(rows):
            answer["NextToken"] = str(offset + size)
        return 200, answer

    def _update(self, body: dict[str, Any]) -> tuple[int, Any]:
        """`UpdateOpportunity`: the whole opportunity replaces the stored one (an omitted field
        becomes null), only if `LastModifiedDate` is the stored one (else
        `ConflictException`), and not while AWS reviews it (`ValidationException`)."""
        found = self.opportunities.get(body.get("Identifier", ""))
        if found is None:
            return 404, {"__type": "ResourceNotFoundException", "Message": "not found"}
        if self.conflicts > 0 or body.get("LastModifiedDate") != found["LastModifiedDate"]:
            self.conflicts = max(0, self.conflicts - 1)
            return 400, {"__type": "ConflictException", "Message": "modified since it was read"}
        if found.get("LifeCycle", {}).get("ReviewStatus") in ("Submitted", "In-Review"):
            return 400, {
                "__type": "ValidationException",
                "Message": "updates are blocked while the opportunity is under review",
            }
        kept = {
            k: found[k]
            for k in ("Id", "Arn", "CreatedDate", "Origin", "OpportunityTeam")
            if k in found
        }
        updated = {k: v for k, v in body.items() if k not in ("Identifier",)}
        updated.update(kept)
        updated["LastModifiedDate"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.opportunities[found["Id"]] = updated
        self.updates.append((found["Id"], body))
        return 200, {"Id": found["Id"], "LastModifiedDate": updated["LastModifiedDate"]}

    def env(self) -> dict[str, str]:
        return {
            "DEALS_ACE_ENDPOINT": self.url,
            "DEALS_ACE_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
            "DEALS_ACE_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        }


class PartnerCenterReferrals(_JsonServer):
    """Plays Partner Center's referrals endpoint (`GET /v1.0/engagements/referrals`, OData
    `$filter=updatedDateTime ge <t>`, `$orderby`, `$top`): `page_size` referrals a page, in
    camelCase as the REST API returns them, with `@odata.nextLink` (or, with `use_tokens`, a
    `continuationToken` to send back in `MS-ContinuationToken`), `GET .../referrals/<id>` (the
    referral with its `@odata.context`, or 404 `NotFound`), and `PATCH .../referrals/<id>`
    with a JSON Patch document. A bearer token is required; while `throttled` counts down,
    429 `TooManyRequests`; while `down`, 503."""

    TOKEN = "partner-center-test-token"
    PATH = "/v1.0/engagements/referrals"

    def __init__(self, page_size: int = 2, use_tokens: bool = False) -> None:
        super().__init__()
        self.page_size = page_size
        self.use_tokens = use_tokens
        self.referrals: dict[str, dict[str, Any]] = {}
        self.down = False  # answers 503 while True
        self.throttled = 0  # the next requests answered 429
        self.patches: list[tuple[str, Any]] = []

    def put(self, referral_id: str, updated: datetime, substatus: str = "Accepted") -> None:
        self.referrals[referral_id] = {
            "id": referral_id,
            "name": f"Referral {referral_id}",
            "createdDateTime": "2026-01-15T09:00:00Z",
            "updatedDateTime": updated.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "status": "Active",
            "substatus": substatus,
            "type": "Shared",
            "customerProfile": {
                "name": "Fabrikam Inc",
                "address": {"country": "US"},
                "ids": [{"type": "Domain", "value": "fabrikam.com"}],
            },
            "details": {"dealValue": 1000, "currency": "USD"},
        }

    def answer(self, request: dict[str, Any]) -> tuple[int, Any]:
        headers = {k.lower(): v for k, v in request["headers"].items()}
        if headers.get("authorization") != f"Bearer {self.TOKEN}":
            return 401, {"error": {"code": "Unauthorized"}}
        if self.throttled > 0:
            self.throttled -= 1
            return 429, {"error": {"code": "TooManyRequests", "message": "Rate limit exceeded"}}
        if self.down:
            return 503, {"error": {"code": "ServiceUnavailable"}}
        parts = urlsplit(request["path"])
        if request["method"] == "PATCH":
            return self._patch(unquote(parts.path.rsplit("/", 1)[1]), request["body"])
        if parts.path.startswith(self.PATH + "/"):
            return self._referral(unquote(parts.path.removeprefix(self.PATH + "/")))
        query = parse_qs(parts.query)
        cursor = query.get("cursor", [headers.get("ms-continuationtoken", "0")])[0]
        since = query.get("$filter", ["updatedDateTime ge "])[0].split(" ge ", 1)[1]
        rows = sorted(
            (r for r in self.referrals.values() if r["updatedDateTime"] >= since),
            key=lambda r: r["updatedDateTime"],
        )
        offset = int(cursor)
        page = rows[offset : offset + self.page_size]
        answer: dict[str, Any] = {"value": page, "totalCount": len(rows)}
        if offset + self.page_size < len(rows):
            following = offset + self.page_size
            if self.use_tokens:
                answer["continuationToken"] = str(following)
            else:
                filter_ = quote(f"updatedDateTime ge {since}")
                answer["@odata.nextLink"] = (
                    f"{self.url}{self.PATH}?$filter={filter_}&cursor={following}"
                )
        return 200, answer

    def _referral(self, referral_id: str) -> tuple[int, Any]:
        """`GET .../referrals/<id>`, answered as its documentation shows (camelCase, with
        `@odata.context`)."""
        found = self.referrals.get(referral_id)
        if found is None:
            return 404, {"error": {"code": "NotFound", "message": "Referral not found"}}
        context = "https://api.partner.microsoft.com/v1.0/engagements/referrals/$metadata"
        return 200, {"@odata.context": f"{context}#Referrals/$entity", **found}

    def _patch(self, referral_id: str, operations: Any) -> tuple[int, Any]:
        """`PATCH .../referrals/<id>`: a JSON Patch document of `replace` and `add` operations
        (the only ones the API takes), answered with the referral (`Prefer:
        return=representation`)."""
        found = self.referrals.get(referral_id)
        if found is None:
            return 404, {"error": {"code": "NotFound"}}
        if not isinstance(operations, list) or any(
            op.get("op") not in ("replace", "add") for op in operations
        ):
            return 400, {"error": {"code": "BadRequest", "message": "replace and add only"}}
        for op in operations:
            *parents, leaf = op["path"].strip("/").split("/")
            target = found
            for parent in parents:
                target = target.setdefault(parent, {})
            target[leaf] = op["value"]
        found["updatedDateTime"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.patches.append((referral_id, operations))
        return 200, found

    def env(self) -> dict[str, str]:
        return {
            "DEALS_MICROSOFT_REFERRALS_URL": self.url + self.PATH,
            "DEALS_MICROSOFT_ACCESS_TOKEN": self.TOKEN,
        }


class HubSpotCrm(_JsonServer):
    """Plays HubSpot's CRM API (v3 objects): `POST /crm/v3/objects/deals/search` (deals
    modified since, paged), `GET /crm/v3/objects/deals/<id>?properties=...
    &associations=companies,line_items` (the deal with `associations` keyed `companies` and
    `line items`), `GET /crm/v3/objects/companies/<id>`, `POST
    /crm/v3/objects/line_items/batch/read`, and `PATCH /crm/v3/objects/deals/<id>` with
    `{"properties": ...}`; 404 `OBJECT_NOT_FOUND` for an unknown object, 401 for a token it does
    not know; while `down`, 502."""

    TOKEN = "pat-na1-local-test-token"

    def __init__(self, portal: int = HUBSPOT_PORTAL) -> None:
        super().__init__()
        self.portal = portal
        self.deals: dict[str, dict[str, str]] = {}
        self.updated_at: dict[str, str] = {}
        self.companies: dict[str, dict[str, str]] = {}
        self.line_items: dict[str, dict[str, str]] = {}
        self.associations: dict[str, dict[str, list[str]]] = {}  # deal -> kind -> ids
        self.down = False
        self.page_size = 100  # search results per page (HubSpot: at most 200)

    def answer(self, request: dict[str, Any]) -> tuple[int, Any]:
        if self.down:
            return 502, {"status": "error", "message": "Bad Gateway"}
        headers = {k.lower(): v for k, v in request["headers"].items()}
        if headers.get("authorization") != f"Bearer {self.TOKEN}":
            return 401, {"status": "error", "category": "INVALID_AUTHENTICATION"}
        path = urlsplit(request["path"]).path
        kind, object_id = path.rsplit("/", 2)[-2:]
        if path == "/crm/v3/objects/deals/search":
            return 200, self._search(request["body"])
        if path == "/crm/v3/objects/line_items/batch/read":
            wanted = [i["id"] for i in request["body"]["inputs"]]
            return 200, {
                "status": "COMPLETE",
                "results": [
                    {"id": i, "properties": self.line_items[i]}
                    for i in wanted
                    if i in self.line_items
                ],
            }
        if kind == "companies" and object_id in self.companies:
            return 200, {"id": object_id, "properties": self.companies[object_id]}
        if kind != "deals" or object_id not in self.deals:
            return 404, {"status": "error", "category": "OBJECT_NOT_FOUND"}
        if request["method"] == "PATCH":
            self.deals[object_id].update(request["body"]["properties"])
        return 200, self._deal(object_id)

    def _search(self, body: dict[str, Any]) -> dict[str, Any]:
        """`POST /crm/v3/objects/deals/search` with one `hs_lastmodifieddate` GTE filter (epoch
        milliseconds), sorted ascending, `page_size` at a time with `paging.next.after`."""
        [group] = body["filterGroups"]
        [wanted] = group["filters"]
        assert (wanted["propertyName"], wanted["operator"]) == ("hs_lastmodifieddate", "GTE")
        since = datetime.fromtimestamp(int(wanted["value"]) / 1000, tz=UTC)
        found = sorted((self._updated(d), d) for d in self.deals if self._updated(d) >= since)
        start = int(body.get("after", 0))
        size = min(int(body.get("limit", 10)), self.page_size)
        page = found[start : start + size]
        answer: dict[str, Any] = {
            "total": len(found),
            "results": [
                {k: v for k, v in self._deal(d).items() if k != "associations"} for _, d in page
            ],
        }
        if start + size < len(found):
            answer["paging"] = {"next": {"after": str(start + size)}}
        return answer

    def _updated(self, deal_id: str) -> datetime:
        return datetime.fromisoformat(
            self.updated_at.get(deal_id, "2026-01-05T09:00:00.000Z").replace("Z", "+00:00")
        )

    def _deal(self, deal_id: str) -> dict[str, Any]:
        linked = self.associations.get(deal_id, {})
        return {
            "id": deal_id,
            "properties": self.deals[deal_id],
            "createdAt": "2026-01-05T09:00:00.000Z",
            "updatedAt": self.updated_at.get(deal_id, "2026-01-05T09:00:00.000Z"),
            "archived": False,
            "associations": {
                kind: {
                    "results": [
                        {
                            "id": i,
                            "type": "deal_to_company"
                            if kind == "companies"
                            else "deal_to_line_item",
                        }
                        for i in ids
                    ]
                }
                for kind, ids in linked.items()
            },
        }

    def env(self) -> dict[str, str]:
        return {
            "DEALS_HUBSPOT_API_URL": self.url,
            "DEALS_HUBSPOT_ACCESS_TOKENS": f"{self.portal}={self.TOKEN}",
        }
