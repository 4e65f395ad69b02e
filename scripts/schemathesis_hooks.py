"""Schemathesis hooks for scripts/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

Three narrow adjustments, each for a reason schemathesis cannot know:

1. The run's own API key is never revoked. Stateful testing lists the keys and follows their
   ids into DELETE /v1/api-keys/{id}; revoking the key the run authenticates with would turn
   every later request into a 401 and leave the rest of the run testing nothing.

2. A schema-valid request refused for a business rule that JSON Schema cannot express is not a
   failure of the document. The document states these rules in words (the 422 response): a phone
   number must exist for its country (libphonenumber), a body must fit the segment limit (which
   depends on the encoding its characters need), `send_at` may be at most 35 days ahead and
   `expires_at` must be in the future (both relative to the server's clock), and an allowlist
   entry must be an IP address or CIDR network (and a ban is lifted by an IP address), an
   account's purge period may not be shorter than its erase period, a credit is more than
   zero, quiet hours may not start and end at the same minute, a send may be refused by the
   account's policy document (which an earlier PUT of the run may have set to any
   schema-valid rules; each refusal names its rule, docs/policy.md), and a send is refused for
   a recipient the run opted out, or a range it sent a burst to. Only these exact
   refusals are accepted, by problem `code` and the phrase of the rule in `detail`; any other
   refusal of schema-valid data (a shape the schema allows but the server does not) still fails.

   An opt-out import sent as CSV is text whose lines must be numbers: its refusal of lines that
   are not is waived for that one operation and media type.

3. DELETE /v1/api-keys/{id} revokes a key; it does not erase it. The key stays readable, with its
   `revoked_at`, so an account can see which keys it had and when each was revoked (the API
   suite asserts this). Schemathesis's use-after-free check expects a 404 there; it is waived
   for exactly that case (an API key shown as revoked), and still applies to any other resource.
"""

import json
import os

import schemathesis
from schemathesis.openapi.checks import RejectedPositiveData, UseAfterFree

# The run's key id: `rk_` and 12 characters, the start of the token.
RUN_KEY_ID = os.environ["RAMPART_SCHEMATHESIS_KEY_ID"]
# A well-formed key id that is never issued, so the request still runs and gets a 404.
NEVER_ISSUED_KEY_ID = "rk_000000000000"

# (problem code, phrase of the rule in its detail)
BUSINESS_RULES = (
    ("invalid_phone_number", "is not a valid phone number for its country"),
    ("invalid_sender", "is not a valid phone number for its country"),
    ("invalid_query", "is not a valid phone number for its country"),
    ("invalid_body", "SMS segments"),
    ("invalid_send_at", "at most 35 days ahead"),
    # The server words an unparseable `expires_at` the same way, but the schema's `date-time`
    # format already rules those out of schema-valid data; and the same parser reads `send_at`,
    # whose refusals of unparseable times are worded apart and still fail the run.
    ("invalid_expires_at", "in the future"),
    # An allowlist entry must be an IP address or CIDR network; JSON Schema has formats for
    # addresses but none for networks, so the document says it in words.
    ("invalid_allowed_ips", "is not an IP address or CIDR network"),
    # PUT /v1/accounts/{id}/retention: whole messages may not be deleted before their bodies
    # are due to be erased, an order between two fields that JSON Schema cannot state.
    ("invalid_retention", "may not be shorter than erase_bodies_after_days"),
    # POST /v1/accounts/{id}/credits: a credit is more than zero, which the amount's decimal
    # pattern does not rule out ("0.00").
    ("invalid_amount", "more than zero"),
    # DELETE /v1/bans/{ip}: the path names an IP address, which JSON Schema cannot state for a
    # path parameter that takes IPv4 and IPv6 alike.
    ("invalid_ip", "is not an IP address"),
    # PUT /v1/accounts/{id}/policy: quiet hours must not start and end at the same minute, an
    # order between two fields that JSON Schema cannot state.
    ("invalid_policy", "must differ from `start`"),
    # PUT /v1/opt-outs/settings: a reply must fit 2 SMS segments, which depends on the
    # encoding its characters need, as a body's limit does.
    ("invalid_reply_text", "SMS segments"),
    # POST /v1/messages: the run itself opts numbers out (POST /v1/opt-outs, the import), and
    # sends to one example number again and again; a later send to an opted-out number, or to
    # a range the pumping defence holds, is refused for that state, not for its shape.
    ("recipient_opted_out", "opted out"),
    ("destination_suspected_pumping", "SMS pumping"),
) + tuple(
    # A send refused by the account's policy document, which an earlier PUT of the run may
    # have set to anything schema-valid (docs/policy.md): each refusal names its rule.
    (code, "(rule ")
    for code in (
        "destination_not_allowed",
        "destination_blocked",
        "sender_not_allowed",
        "too_many_segments",
        "content_blocked",
        "url_shortener_blocked",
        "opt_out_footer_missing",
        "quiet_hours",
        "frequency_cap_exceeded",
        "recipient_opted_out",
    )
)


@schemathesis.hook
def before_call(context, case, kwargs):
    if (
        case.method.upper() == "DELETE"
        and case.path == "/v1/api-keys/{id}"
        and (case.path_parameters or {}).get("id") == RUN_KEY_ID
    ):
        case.path_parameters["id"] = NEVER_ISSUED_KEY_ID


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Keeps every failure but the two kinds the module's docstring explains."""
    if isinstance(failure, UseAfterFree):
        return not is_revoked_api_key(case, response)
    if isinstance(failure, RejectedPositiveData) and response.status_code in (400, 422):
        return not (is_business_rule_refusal(response) or is_csv_import_refusal(case, response))
    return True


def json_object(response):
    try:
        value = json.loads(response.content)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def is_revoked_api_key(case, response):
    shown = json_object(response)
    return (
        case.method.upper() == "GET"
        and case.path == "/v1/api-keys/{id}"
        and response.status_code == 200
        and shown is not None
        and isinstance(shown.get("revoked_at"), str)
    )


def is_csv_import_refusal(case, response):
    """POST /v1/opt-outs/import as `text/csv`: any text is a schema-valid CSV body, while its
    lines must be E.164 numbers, which a schema for a text body cannot state."""
    problem = json_object(response) or {}
    return (
        case.method.upper() == "POST"
        and case.path == "/v1/opt-outs/import"
        and (case.media_type or "").startswith("text/csv")
        and problem.get("code") in ("invalid_phone_number", "malformed_csv")
    )


def is_business_rule_refusal(response):
    problem = json_object(response)
    if problem is None:
        return False
    code, detail = problem.get("code"), str(problem.get("detail", ""))
    return any(code == rule and phrase in detail for rule, phrase in BUSINESS_RULES)
