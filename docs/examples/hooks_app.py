"""An application that takes part in the events server: answers its permission hooks and
receives its webhooks (docs/hooks.md).

    python docs/examples/hooks_app.py --port 9000 --secret "$HOOK_SECRET" --banned 7,12

Then start the server with
    --hook-url=http://127.0.0.1:9000/hooks --hooks=connect,subscribe,publish
    --webhook-url=http://127.0.0.1:9000/webhooks --hook-secret="$HOOK_SECRET"

Its rules: the users in --banned may not connect; only admins may subscribe to channels
starting with `room:staff`; a message with a link is refused; words in MASKED are replaced by
asterisks (the message is stored and delivered rewritten). Every request must carry a valid
X-Events-Signature. Each webhook is printed once as a JSON line, duplicates (a retry of an
event already handled) are acknowledged and skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import re
import time
from collections import OrderedDict
from typing import Any

import tornado.web

MASKED = ("darn", "heck")
LINK = re.compile(r"https?://", re.IGNORECASE)
SEEN_IDS = 100_000  # webhook ids remembered for deduplication


def verify_signature(secret: str, body: bytes, header: str, tolerance: int = 300) -> bool:
    """Returns whether header (X-Events-Signature) signs body with secret, made recently."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    signed = f"{timestamp}.".encode() + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields.get("v1", ""))


def decide(request: dict[str, Any], banned: set[int]) -> dict[str, Any]:
    """Returns the answer to one permission hook request."""
    user = request["user"]
    if request["hook"] == "connect":
        if user["id"] in banned:
            return {"result": "deny", "message": "this account is suspended"}
        return {"result": "allow"}
    if request["hook"] == "subscribe":
        if request["channel"].startswith("room:staff") and user["role"] == "user":
            return {"result": "deny", "message": "staff only"}
        return {"result": "allow"}
    data = request["data"]  # publish: the message the user sent
    text = data.get("text") if isinstance(data, dict) else None
    if not isinstance(text, str):
        return {"result": "allow"}
    if LINK.search(text):
        return {"result": "deny", "message": "links are not allowed here"}
    masked = text
    for word in MASKED:
        masked = re.sub(rf"\b{word}\b", lambda m: m[0][0] + "*" * (len(m[0]) - 1), masked,
                        flags=re.IGNORECASE)
    if masked == text:
        return {"result": "allow"}
    return {"result": "allow", "data": {**data, "text": masked}}


class Signed(tornado.web.RequestHandler):
    """Refuses requests whose signature does not verify."""

    def initialize(self, secret: str, **state: Any) -> None:
        self.secret = secret
        self.state = state

    def prepare(self) -> None:
        header = self.request.headers.get("X-Events-Signature", "")
        if not verify_signature(self.secret, self.request.body, header):
            raise tornado.web.HTTPError(401, "bad signature")


class HooksHandler(Signed):
    """POST /hooks: allow, deny or rewrite."""

    def post(self) -> None:
        self.write(decide(json.loads(self.request.body), self.state["banned"]))


class WebhooksHandler(Signed):
    """POST /webhooks: handles each event once (by its id), then answers 204."""

    def post(self) -> None:
        event = json.loads(self.request.body)
        seen: OrderedDict[str, None] = self.state["seen"]
        if event["id"] not in seen:
            seen[event["id"]] = None
            if len(seen) > SEEN_IDS:
                seen.popitem(last=False)
            print(json.dumps({"webhook": event["type"], "id": event["id"],
                              "node": event["node"], "data": event["data"]}), flush=True)
        self.set_status(204)


def make_app(secret: str, banned: set[int]) -> tornado.web.Application:
    """Returns the application: /hooks and /webhooks."""
    state = {"secret": secret, "banned": banned, "seen": OrderedDict()}
    return tornado.web.Application([(r"/hooks", HooksHandler, state),
                                    (r"/webhooks", WebhooksHandler, state)])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--secret", required=True, help="the server's --hook-secret")
    parser.add_argument("--banned", default="", help="comma-separated user ids")
    args = parser.parse_args()
    banned = {int(i) for i in args.banned.split(",") if i.strip()}
    make_app(args.secret, banned).listen(args.port, "127.0.0.1")
    print(f"listening on http://127.0.0.1:{args.port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
