"""Locust load test of the HAVEN API, ported from the seed guide's locustfile.

Runs against the stack `cargo xtask up` starts: URLs, the API key and the
partner secrets are read from `target/haven-dev/stack.json` (override the
file with HAVEN_STACK_FILE). Webhooks and token commands go to
webhook-ingress, reads to read-api.

Each simulated user is one guest: on start it books a stay (a signed Aurora
`booking-created` webhook, which creates the guest and their reward), waits
until read-api knows the guest, then runs the weighted tasks:

- webhooks signed the three ways the API accepts them: hex HMAC-SHA256 of the
  raw body (`X-Aurora-Signature` / `X-Tribe-Signature`), the same over the
  canonical JSON of the seed guide's senders (`json.dumps(payload,
  sort_keys=True)`), and Standard Webhooks (`webhook-id`,
  `webhook-timestamp`, `webhook-signature: v1,<base64>`);
- token commands with `X-API-Key`: `POST /token/mint` (an idempotency key
  per request, and once in a while a repeat that must answer `duplicate`)
  and `POST /token/redeem`;
- reads: balance, user analytics, transactions, token stats, health.

    locust -f load-tests/locust/locustfile.py --headless -u 50 -r 10 -t 60s

(`--host` is not needed: it comes from stack.json.) The stack's token
commands are rate-limited per API key (RATE_LIMIT_PER_MINUTE, 100 by
default): start the stack with `RATE_LIMIT_PER_MINUTE=0` to load them, or
answers 429 count as failures.
"""

import base64
import hashlib
import hmac
import json
import os
import pathlib
import random
import time
import uuid

from locust import HttpUser, between, events, task

STACK_FILE = pathlib.Path(
    os.environ.get(
        "HAVEN_STACK_FILE",
        pathlib.Path(__file__).resolve().parents[2] / "target" / "haven-dev" / "stack.json",
    )
)


def load_stack(path=STACK_FILE):
    """The running stack's URLs and secrets (written by `cargo xtask up`)."""
    try:
        stack = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise SystemExit(f"{path} not found: start the stack with `cargo xtask up` first") from err
    return {
        "ingress": stack["services"]["webhook-ingress"]["url"].rstrip("/"),
        "read_api": stack["services"]["read-api"]["url"].rstrip("/"),
        "api_key": stack["api_key"],
        "aurora": stack["partner_secrets"]["aurora"],
        "tribe": stack["partner_secrets"]["tribe"],
    }


STACK = load_stack()


def secret_key(secret):
    """HMAC key of a partner secret: `whsec_<base64>` decoded, else its bytes."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_"):])
    return secret.encode()


def hex_signature(secret, message):
    return hmac.new(secret_key(secret), message, hashlib.sha256).hexdigest()


def canonical(payload):
    """The seed guide's senders sign this form (keys sorted, Python separators)."""
    return json.dumps(payload, sort_keys=True)


def standard_headers(secret, body):
    """Standard Webhooks headers for the raw body."""
    msg_id = f"msg_{uuid.uuid4().hex}"
    timestamp = str(int(time.time()))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


PARTNER_HEADER = {"aurora": "X-Aurora-Signature", "tribe": "X-Tribe-Signature"}


def signed_request(partner, payload, scheme):
    """(body bytes, headers) of a webhook signed with `scheme`:
    `raw` (hex over the raw body), `canonical` (hex over the sorted JSON,
    the body sent as compact JSON) or `standard` (Standard Webhooks)."""
    secret = STACK[partner]
    headers = {"Content-Type": "application/json"}
    if scheme == "canonical":
        # The body differs from the signed form on purpose: the service
        # accepts the canonical form of whatever JSON it receives.
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers[PARTNER_HEADER[partner]] = hex_signature(secret, canonical(payload).encode())
    elif scheme == "standard":
        body = json.dumps(payload).encode()
        headers.update(standard_headers(secret, body))
    else:
        body = json.dumps(payload).encode()
        headers[PARTNER_HEADER[partner]] = hex_signature(secret, body)
    return body, headers


def expect(response, *statuses, body_check=None):
    """Marks the locust response failed unless its status (and body) fit."""
    if response.status_code not in statuses:
        response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
        return False
    if body_check is not None:
        try:
            data = response.json()
        except ValueError:
            response.failure("answer is not JSON")
            return False
        problem = body_check(data)
        if problem:
            response.failure(problem)
            return False
    response.success()
    return True


def accepted(data):
    if data.get("status") not in ("accepted", "duplicate"):
        return f"unexpected webhook answer {data}"
    return None


class HavenUser(HttpUser):
    """One guest of the partners, booking, earning, reading and redeeming."""

    host = STACK["ingress"]
    wait_time = between(0.5, 2)

    def on_start(self):
        self.guest = f"locust_{uuid.uuid4().hex[:12]}"
        self.bookings = 0
        self.last_mint = None
        self.book("raw")
        # The reward-calculator creates the guest asynchronously.
        deadline = time.time() + 60
        while time.time() < deadline:
            with self.client.get(
                f"{STACK['read_api']}/token/balance/{self.guest}",
                name="/token/balance/{user_id} (waiting for the guest)",
                catch_response=True,
            ) as r:
                # 404 `User not found` is the expected answer until then.
                if r.status_code == 404:
                    r.success()
                elif expect(r, 200):
                    return
            time.sleep(0.5)

    # --- webhooks -----------------------------------------------------------

    def book(self, scheme):
        self.bookings += 1
        payload = {
            "id": f"{self.guest}_booking_{self.bookings}",
            "guest_id": self.guest,
            "total_price": round(random.uniform(80, 400), 2),
            "nights": random.randint(1, 5),
        }
        body, headers = signed_request("aurora", payload, scheme)
        with self.client.post(
            "/webhooks/aurora/booking-created",
            data=body,
            headers=headers,
            name=f"/webhooks/aurora/booking-created [{scheme}]",
            catch_response=True,
        ) as r:
            expect(r, 200, body_check=accepted)

    @task(10)
    def webhook_raw_body(self):
        self.book("raw")

    @task(5)
    def webhook_canonical_json(self):
        self.book("canonical")

    @task(5)
    def webhook_standard(self):
        self.book("standard")

    @task(3)
    def tribe_event_attendance(self):
        payload = {
            "id": f"evt_{uuid.uuid4().hex}",
            "user_id": self.guest,
            "event_name": "Load test meetup",
            "event_type": "workshop",
        }
        body, headers = signed_request("tribe", payload, random.choice(["raw", "standard"]))
        with self.client.post(
            "/webhooks/tribe/event-attendance",
            data=body,
            headers=headers,
            name="/webhooks/tribe/event-attendance",
            catch_response=True,
        ) as r:
            expect(r, 200, body_check=accepted)

    @task(1)
    def webhook_bad_signature(self):
        body = json.dumps({"id": "forged", "guest_id": self.guest, "total_price": 1, "nights": 1}).encode()
        with self.client.post(
            "/webhooks/aurora/booking-created",
            data=body,
            headers={"Content-Type": "application/json", "X-Aurora-Signature": "0" * 64},
            name="/webhooks/aurora/booking-created [forged]",
            catch_response=True,
        ) as r:
            expect(r, 401)

    # --- token commands -----------------------------------------------------

    def api_headers(self, **extra):
        return {"X-API-Key": STACK["api_key"], **extra}

    @task(4)
    def mint(self):
        # Once in a while repeat the last mint word for word: the answer must
        # be `duplicate` (the same key with another request would be a 422).
        repeat = self.last_mint is not None and random.random() < 0.2
        if repeat:
            payload = self.last_mint
        else:
            payload = {
                "user_id": self.guest,
                "amount": f"{random.randint(1, 100)}.5",
                "reason": "load_test",
                "idempotency_key": f"mint_{uuid.uuid4().hex}",
            }
        key = payload["idempotency_key"]

        def check(data):
            wanted = "duplicate" if repeat else "queued"
            if data.get("status") != wanted or data.get("tx_id") != key:
                return f"expected {wanted} for {key}, got {data}"
            return None

        with self.client.post(
            "/token/mint",
            json=payload,
            headers=self.api_headers(),
            name="/token/mint [repeat]" if repeat else "/token/mint",
            catch_response=True,
        ) as r:
            if expect(r, 200, body_check=check):
                self.last_mint = payload

    @task(1)
    def redeem(self):
        payload = {
            "user_id": self.guest,
            "amount": "1",
            "withdrawal_method": "bank_transfer",
            "idempotency_key": f"redeem_{uuid.uuid4().hex}",
        }
        with self.client.post(
            "/token/redeem",
            json=payload,
            headers=self.api_headers(),
            name="/token/redeem",
            catch_response=True,
        ) as r:
            # The reward may still be on its way to the chain.
            if r.status_code == 400 and "Insufficient balance" in r.text:
                r.success()
            else:
                expect(r, 200, body_check=lambda d: None if d.get("status") == "queued" else f"{d}")

    # --- reads --------------------------------------------------------------

    @task(30)
    def balance(self):
        with self.client.get(
            f"{STACK['read_api']}/token/balance/{self.guest}",
            name="/token/balance/{user_id}",
            catch_response=True,
        ) as r:
            expect(r, 200, body_check=lambda d: None if "balance" in d else f"no balance in {d}")

    @task(10)
    def user_analytics(self):
        with self.client.get(
            f"{STACK['read_api']}/analytics/user/{self.guest}",
            name="/analytics/user/{user_id}",
            catch_response=True,
        ) as r:
            expect(r, 200)

    @task(10)
    def transactions(self):
        with self.client.get(
            f"{STACK['read_api']}/analytics/transactions/{self.guest}?limit=50&offset=0",
            name="/analytics/transactions/{user_id}",
            catch_response=True,
        ) as r:
            expect(r, 200, body_check=lambda d: None if "transactions" in d else f"{d}")

    @task(5)
    def token_stats(self):
        with self.client.get(
            f"{STACK['read_api']}/analytics/token-stats",
            name="/analytics/token-stats",
            catch_response=True,
        ) as r:
            expect(r, 200, body_check=lambda d: None if "total_minted" in d else f"{d}")

    @task(5)
    def health(self):
        for service, base in (("webhook-ingress", STACK["ingress"]), ("read-api", STACK["read_api"])):
            with self.client.get(f"{base}/health", name=f"/health [{service}]", catch_response=True) as r:
                expect(r, 200)


@events.test_start.add_listener
def announce(environment, **_kwargs):
    print(f"HAVEN stack from {STACK_FILE}: webhook-ingress {STACK['ingress']}, read-api {STACK['read_api']}")
