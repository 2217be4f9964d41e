#!/usr/bin/env python3
"""Mint demo access tokens for Warden's example identity provider.

The tokens are signed with the demo keys in ``examples/keys/`` (never use them
for anything real) and carry the claims ``examples/policy.yaml`` expects:
``iss``, ``aud``, ``sub``, ``actor_type``, optional ``groups``, ``scope``,
``client_id``, ``jti``, ``iat``, ``nbf``, ``exp`` and, for delegation, the
RFC 8693 ``act`` claim (the current actor; a nested ``act`` inside it is the
earlier part of the chain).

Examples::

    tools/mint_token.py --sub alice --actor-type human --groups eng
    tools/mint_token.py --sub ci-deployer --actor-type service --alg RS256
    tools/mint_token.py --sub alice --actor-type human --groups eng --act research-agent:agent
    tools/mint_token.py --sub alice --actor-type human --exp-in -100      # already expired
    tools/mint_token.py --sub alice --actor-type human --bad alg-none     # test-only bad token

As a library::

    from mint_token import mint, Actor
    token = mint("alice", "human", groups=["eng"], act=[Actor("research-agent", "agent")])

Test-only helpers build tokens the filter must refuse: :func:`alg_none_token`,
:func:`bad_signature_token`, :func:`wrong_audience_token`, :func:`expired_token`,
:func:`unknown_kid_token`.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent

try:
    import jwt  # PyJWT (a dependency of the mcp package)
except ImportError:  # run with a Python that lacks PyJWT: use the project's venv
    _venv_python = REPO_ROOT / ".venv" / "bin" / "python"
    if __name__ == "__main__" and _venv_python.exists() and Path(sys.executable) != _venv_python:
        import os

        os.execv(str(_venv_python), [str(_venv_python), *sys.argv])
    raise SystemExit("mint_token: PyJWT is missing; run `make venv` and use .venv/bin/python") from None
KEYS_DIR = REPO_ROOT / "examples" / "keys"

ISSUER = "https://idp.demo.warden.test"
AUDIENCE = "https://mcp.demo.warden.test/mcp"
DEFAULT_LIFETIME = 600
ACTOR_TYPES = ("human", "service", "agent")

# algorithm -> (kid, private key file)
KEYS = {
    "ES256": ("demo-es256", "demo-es256.pem"),
    "RS256": ("demo-rs256", "demo-rs256.pem"),
    "EdDSA": ("demo-eddsa", "demo-eddsa.pem"),
}


@dataclass(frozen=True)
class Actor:
    """One link of an RFC 8693 delegation chain."""

    sub: str
    actor_type: str = "agent"

    @classmethod
    def parse(cls, text: str) -> "Actor":
        """Parse ``sub`` or ``sub:actor_type`` (default type: agent)."""
        sub, _, actor_type = text.partition(":")
        actor_type = actor_type or "agent"
        if not sub:
            raise ValueError(f"empty actor subject in `{text}`")
        if actor_type not in ACTOR_TYPES:
            raise ValueError(f"unknown actor type `{actor_type}` (one of {', '.join(ACTOR_TYPES)})")
        return cls(sub, actor_type)


def act_claim(chain: Sequence[Actor]) -> dict[str, Any] | None:
    """Build the nested ``act`` claim: ``chain[0]`` is the current actor,
    each later entry the one before it (nested one level deeper)."""
    claim: dict[str, Any] | None = None
    for actor in reversed(chain):
        link: dict[str, Any] = {"sub": actor.sub, "actor_type": actor.actor_type}
        if claim is not None:
            link["act"] = claim
        claim = link
    return claim


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def private_key(alg: str = "ES256") -> str:
    """PEM text of the demo private key for ``alg``."""
    if alg not in KEYS:
        raise ValueError(f"unsupported algorithm `{alg}` (one of {', '.join(KEYS)})")
    return (KEYS_DIR / KEYS[alg][1]).read_text(encoding="ascii")


def claims(
    sub: str,
    actor_type: str,
    *,
    groups: Iterable[str] | None = None,
    scope: str | Iterable[str] | None = None,
    client_id: str | None = None,
    act: Sequence[Actor] | dict[str, Any] | None = None,
    iss: str = ISSUER,
    aud: str | list[str] = AUDIENCE,
    exp_in: int = DEFAULT_LIFETIME,
    nbf_in: int = 0,
    now: int | None = None,
    jti: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The claim set of a demo token (``exp`` = now + ``exp_in`` seconds)."""
    if actor_type not in ACTOR_TYPES:
        raise ValueError(f"unknown actor type `{actor_type}` (one of {', '.join(ACTOR_TYPES)})")
    now = int(time.time()) if now is None else now
    body: dict[str, Any] = {
        "iss": iss,
        "aud": aud,
        "sub": sub,
        "actor_type": actor_type,
        "jti": jti or uuid.uuid4().hex,
        "iat": now,
        "nbf": now + nbf_in,
        "exp": now + exp_in,
    }
    if groups is not None:
        body["groups"] = list(groups)
    if scope is not None:
        body["scope"] = scope if isinstance(scope, str) else " ".join(scope)
    if client_id is not None:
        body["client_id"] = client_id
    if act:
        body["act"] = act if isinstance(act, dict) else act_claim(act)
    if extra:
        body.update(extra)
    return body


def sign(payload: dict[str, Any], alg: str = "ES256", *, kid: str | None = None) -> str:
    """Sign a claim set with the demo key for ``alg``."""
    default_kid, _ = KEYS[alg] if alg in KEYS else (None, None)
    headers = {"kid": kid or default_kid, "typ": "JWT"}
    return jwt.encode(payload, private_key(alg), algorithm=alg, headers=headers)


def mint(
    sub: str,
    actor_type: str = "human",
    *,
    alg: str = "ES256",
    kid: str | None = None,
    **claim_options: Any,
) -> str:
    """Mint a valid demo token; keyword options are those of :func:`claims`."""
    return sign(claims(sub, actor_type, **claim_options), alg, kid=kid)


# --- Test-only bad tokens: the filter must answer each with 401. ---


def alg_none_token(sub: str = "alice", actor_type: str = "human", **claim_options: Any) -> str:
    """An unsigned token (``alg: none``) with otherwise valid claims."""
    header = {"alg": "none", "typ": "JWT", "kid": KEYS["ES256"][0]}
    payload = claims(sub, actor_type, **claim_options)
    return (
        _b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64url(json.dumps(payload, separators=(",", ":")).encode())
        + "."
    )


def bad_signature_token(
    sub: str = "alice", actor_type: str = "human", *, alg: str = "ES256", **claim_options: Any
) -> str:
    """A correctly shaped token whose signature does not verify (one byte flipped)."""
    token = mint(sub, actor_type, alg=alg, **claim_options)
    head, body, signature = token.split(".")
    raw = bytearray(_b64url_decode(signature))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{body}.{_b64url(bytes(raw))}"


def resigned_payload_token(sub: str = "alice", actor_type: str = "human", **claim_options: Any) -> str:
    """A token whose payload was swapped after signing (signature of another payload)."""
    original = mint(sub, actor_type, **claim_options).split(".")
    forged = claims(sub, actor_type, **{**claim_options, "groups": ["admins"]})
    forged_body = _b64url(json.dumps(forged, separators=(",", ":")).encode())
    return f"{original[0]}.{forged_body}.{original[2]}"


def wrong_audience_token(
    sub: str = "alice", actor_type: str = "human", *, aud: str = "https://other.example.test/mcp", **claim_options: Any
) -> str:
    """A validly signed token issued for another resource."""
    return mint(sub, actor_type, aud=aud, **claim_options)


def expired_token(sub: str = "alice", actor_type: str = "human", *, ago: int = 3600, **claim_options: Any) -> str:
    """A validly signed token that expired ``ago`` seconds ago (well past any clock skew)."""
    now = int(time.time())
    return mint(sub, actor_type, now=now - ago - DEFAULT_LIFETIME, exp_in=DEFAULT_LIFETIME, **claim_options)


def unknown_kid_token(sub: str = "alice", actor_type: str = "human", **claim_options: Any) -> str:
    """A token signed with the demo key but naming a key id the JWKS does not have."""
    return mint(sub, actor_type, kid="no-such-key", **claim_options)


BAD_KINDS = {
    "alg-none": alg_none_token,
    "signature": bad_signature_token,
    "audience": wrong_audience_token,
    "expired": expired_token,
    "unknown-kid": unknown_kid_token,
}


def decode_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and payload of a token, without verification (for display)."""
    head, body, _ = token.split(".")
    return json.loads(_b64url_decode(head)), json.loads(_b64url_decode(body))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Mint a demo access token for Warden (demo keys, never for real use).",
    )
    parser.add_argument("--sub", required=True, help="subject (the user or service)")
    parser.add_argument("--actor-type", default="human", choices=ACTOR_TYPES)
    parser.add_argument("--groups", action="append", default=None, help="group; repeat or comma-separate")
    parser.add_argument("--scope", default=None, help="space-separated scopes")
    parser.add_argument("--client-id", default=None)
    parser.add_argument(
        "--act",
        action="append",
        default=None,
        metavar="SUB[:TYPE]",
        help="delegation: the current actor first, repeat for the earlier chain (type defaults to agent)",
    )
    parser.add_argument("--alg", default="ES256", choices=sorted(KEYS))
    parser.add_argument("--kid", default=None, help="override the key id in the header")
    parser.add_argument("--iss", default=ISSUER)
    parser.add_argument("--aud", default=AUDIENCE)
    parser.add_argument("--exp-in", type=int, default=DEFAULT_LIFETIME, help="seconds until expiry (negative: expired)")
    parser.add_argument("--jti", default=None)
    parser.add_argument("--bad", choices=sorted(BAD_KINDS), default=None, help="test only: mint a token to be refused")
    parser.add_argument("--show", action="store_true", help="print header and claims to stderr")
    args = parser.parse_args(argv)

    groups = None
    if args.groups is not None:
        groups = [g for item in args.groups for g in item.split(",") if g]
    try:
        act = [Actor.parse(item) for item in args.act] if args.act else None
    except ValueError as error:
        parser.error(str(error))
    options: dict[str, Any] = {
        "groups": groups,
        "scope": args.scope,
        "client_id": args.client_id,
        "act": act,
        "iss": args.iss,
        "exp_in": args.exp_in,
        "jti": args.jti,
    }
    if args.bad is None:
        token = mint(args.sub, args.actor_type, alg=args.alg, kid=args.kid, aud=args.aud, **options)
    else:
        if args.bad != "audience":
            options["aud"] = args.aud
        if args.bad == "expired":
            options.pop("exp_in")
        token = BAD_KINDS[args.bad](args.sub, args.actor_type, **options)
    if args.show:
        header, payload = decode_unverified(token)
        print(json.dumps({"header": header, "claims": payload}, indent=2), file=sys.stderr)
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
