"""The checks a webhook request passes before it runs anything, in NodeDrop's order and with its answers.

TriggerService.handleWebhookTrigger checks the method (405), then the authentication (401), then the
options (validateWebhookOptions: bots, IP list, origin; 403). The HMAC signature is the first check of
NodeDrop's shared webhook validation (utils/webhookValidation.ts validateWebhookRequest, 403); here it
runs after the authentication, before the other options.

Differences, each on purpose: secrets are compared in constant time (``hmac.compare_digest`` of digests,
so neither content nor length leaks; NodeDrop compares basic and header credentials with ``===``); a
basic-auth password may contain ``:`` (NodeDrop's ``split(":")`` cuts it off); the HMAC is computed over
the body's bytes as they arrived (NodeDrop re-serializes a parsed JSON body, which no sender signs); the
IP allow-list takes IPv4 and IPv6 addresses and CIDR ranges, and an IPv4-mapped IPv6 client address
(``::ffff:10.0.0.1``) matches its IPv4 entry.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Mapping

from nodedrop_rq.webhooks.config import DEFAULT_HMAC_HEADER, Auth, WebhookConfig, split_list

CORS_METHODS = "GET, POST, PUT, DELETE, PATCH, OPTIONS"
CORS_HEADERS = "Content-Type, Authorization, X-Requested-With, Accept"
_SIGNATURE_PREFIX = re.compile(r"^(sha1|sha256|sha512)=(.+)$")
# webhookValidation.ts isBot (the longer of NodeDrop's two lists).
_BOTS = re.compile(
    "bot|crawler|spider|slurp|googlebot|bingbot|yandex|baiduspider|facebookexternalhit|twitterbot|rogerbot|"
    "linkedinbot|embedly|quora link preview|showyoubot|outbrain|pinterest|slackbot|vkshare|w3c_validator|"
    "redditbot|applebot|whatsapp|flipboard|tumblr|bitlybot|skypeuripreview|nuzzel|discordbot|qwantify|"
    "pinterestbot|telegrambot|scraper|preview|telegram", re.IGNORECASE)


class Refused(Exception):
    """A request the trigger does not accept: answered with ``status`` and NodeDrop's ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def same(supplied: str | bytes, expected: str | bytes) -> bool:
    """Constant-time equality that leaks neither the content nor the length of ``expected``."""
    def digest(value: str | bytes) -> bytes:
        return hashlib.sha256(value.encode("utf-8") if isinstance(value, str) else value).digest()

    return hmac.compare_digest(digest(supplied), digest(expected))


def authenticated(auth: Auth | None, headers: Mapping[str, str], query: Mapping[str, object]) -> bool:
    """TriggerService.validateWebhookAuthentication: basic, header or query authentication."""
    if auth is None:
        return True
    if auth.type == "basic":
        header = headers.get("authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            username, sep, password = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        # Both compared, always, so that the time taken does not say which one was wrong.
        return bool(sep) & same(username, auth.username) & same(password, auth.password)
    if auth.type == "header":
        return same(headers.get(auth.name.lower(), ""), auth.expected) and auth.name.lower() in headers
    supplied = query.get(auth.name)
    return isinstance(supplied, str) and same(supplied, auth.expected)


def check_signature(config: WebhookConfig, headers: Mapping[str, str], body: bytes) -> None:
    """hmacVerification.ts verifyWebhookSignature: a hex HMAC of the body in ``hmacHeader`` (``sha256=``
    prefixes as GitHub sends them are accepted), when ``hmacSecret`` is set."""
    secret = config.hmac_secret
    if not secret.strip():
        return
    header = config.options.get("hmacHeader") or DEFAULT_HMAC_HEADER
    supplied = headers.get(header.lower())
    if not supplied:
        raise Refused(403, f"Missing signature header: {header}")
    match = _SIGNATURE_PREFIX.match(supplied)
    signature = match.group(2) if match else supplied
    algorithm = config.options.get("hmacAlgorithm") or "sha256"
    expected = hmac.new(secret.encode("utf-8"), body, algorithm).hexdigest()
    if not hmac.compare_digest(signature.strip().lower().encode("latin-1", "replace"), expected.encode()):
        raise Refused(403, "Invalid HMAC signature")


def ip_allowed(config: WebhookConfig, client_ip: str) -> bool:
    networks = config.ip_networks
    if not networks:
        return True
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == network.version and address in network for network in networks)


def origin_allowed(allowed: str, origin: str) -> bool:
    """webhookValidation.ts isOriginAllowed: ``*``, an exact origin, or ``*.example.com``."""
    if allowed.strip() == "*":
        return True
    for entry in split_list(allowed):
        if entry == origin or (entry.startswith("*.") and origin.endswith(entry[2:])):
            return True
    return False


def check_options(config: WebhookConfig, headers: Mapping[str, str], client_ip: str) -> None:
    """TriggerService.validateWebhookOptions: bots, IP allow-list, origin."""
    options = config.options
    if options.get("ignoreBots") is True and _BOTS.search(headers.get("user-agent", "")):
        raise Refused(403, "Bot requests are not allowed")
    if not ip_allowed(config, client_ip):
        raise Refused(403, "IP address not whitelisted")
    allowed = options.get("allowedOrigins")
    origin = headers.get("origin")
    if isinstance(allowed, str) and allowed and origin and not origin_allowed(allowed, origin):
        raise Refused(403, "Origin not allowed")


def cors_headers(config: WebhookConfig, origin: str | None) -> dict[str, str]:
    """The CORS headers of an answer (webhook.ts sendWebhookResponse): only when ``allowedOrigins`` is set."""
    allowed = config.options.get("allowedOrigins")
    if not isinstance(allowed, str) or not allowed:
        return {}
    out: dict[str, str] = {}
    if allowed.strip() == "*":
        out["Access-Control-Allow-Origin"] = "*"
    elif origin and origin_allowed(allowed, origin):
        out.update({"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true",
                    "Vary": "Origin"})
    out["Access-Control-Allow-Methods"] = CORS_METHODS
    out["Access-Control-Allow-Headers"] = CORS_HEADERS
    return out


def check(config: WebhookConfig, headers: Mapping[str, str], query: Mapping[str, object], body: bytes,
          client_ip: str) -> None:
    """Every check after the method's, in order; raises :class:`Refused` at the first that fails."""
    if not authenticated(config.auth, headers, query):
        raise Refused(401, "Webhook authentication failed")
    check_signature(config, headers, body)
    check_options(config, headers, client_ip)
