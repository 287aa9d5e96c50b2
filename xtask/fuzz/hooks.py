"""schemathesis hooks of `cargo xtask test --step fuzz`.

Partner webhooks are signed as the partners sign them, with the partner's
secret from the stack file, so the fuzzed bodies reach the payload parser
and the handlers behind the signature check instead of all stopping at 401:
three cases in eight get a hex HMAC-SHA256 of the body (`X-Aurora-Signature`
/ `X-Tribe-Signature`), three in eight Standard Webhooks headers (a fresh
`webhook-id`, the current `webhook-timestamp`, `webhook-signature: v1,...`),
and one in four keeps whatever schemathesis generated, so unsigned and
wrongly signed deliveries are still tried.
"""

import base64
import hashlib
import hmac
import json
import os
import time
import uuid

import schemathesis

with open(os.environ["HAVEN_STACK_FILE"], encoding="utf-8") as stack_file:
    _STACK = json.load(stack_file)

# Route prefix -> (hex signature header, secret).
_PARTNERS = {
    "/webhooks/aurora/": ("X-Aurora-Signature", _STACK["partner_secrets"]["aurora"]),
    "/webhooks/tribe/": ("X-Tribe-Signature", _STACK["partner_secrets"]["tribe"]),
}
_STANDARD = ("webhook-id", "webhook-timestamp", "webhook-signature")


def _wire_body(body):
    """The bytes the requests transport sends for a JSON body."""
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    return json.dumps(body).encode("utf-8")


def _key(secret):
    """The HMAC key of a secret: a `whsec_` key is base64, any other its bytes."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_"):])
    return secret.encode("utf-8")


def _without(headers, names):
    lowered = {name.lower() for name in names}
    return {k: v for k, v in (headers or {}).items() if k.lower() not in lowered}


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    path = ctx.operation.path if ctx.operation is not None else ""
    partner = next((v for k, v in _PARTNERS.items() if path.startswith(k)), None)
    if partner is None or case.body is None:
        return
    try:
        raw = _wire_body(case.body)
    except (TypeError, ValueError):
        return
    choice = hashlib.sha256(raw).digest()[0] % 8
    if choice < 2:
        return
    header, secret = partner
    key = _key(secret)
    if choice < 5:
        case.headers = _without(case.headers, _STANDARD)
        case.headers[header] = hmac.new(key, raw, hashlib.sha256).hexdigest()
    else:
        case.headers = _without(case.headers, (header,) + _STANDARD)
        delivery = f"msg_{uuid.uuid4().hex}"
        timestamp = str(int(time.time()))
        signed = f"{delivery}.{timestamp}.".encode("utf-8") + raw
        signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        case.headers["webhook-id"] = delivery
        case.headers["webhook-timestamp"] = timestamp
        case.headers["webhook-signature"] = f"v1,{signature}"
