"""JWT bearer tokens, verified with PyJWT.

HMAC algorithms (HS256/384/512) verify with a shared secret; RS256/384/512,
PS256, ES256/384/512 and EdDSA with a public key (PEM text or a PEM file). `exp`
and `nbf` are always checked when present; `exp` is required. `iss` and `aud`
are checked when configured. The identity is the `sub` claim, or the claim named
by --jwt-identity-claim; permissions come from `permissions` or `scope`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jwt
from starlette.requests import Request

from runlane.api.auth.identity import Identity, bearer_token, permissions_of
from runlane.errors import AuthError, JwtConfigError

HMAC_ALGORITHMS = {"HS256", "HS384", "HS512"}
KEY_ALGORITHMS = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                  "ES256", "ES384", "ES512", "EdDSA"}
# Clock skew tolerated on exp/nbf/iat between the issuer and this server.
LEEWAY_SECONDS = 30


@dataclasses.dataclass
class JwtOptions:
    secret: str | None = None
    public_key: str | None = None  # PEM text, or the path of a PEM file
    algorithms: list[str] = dataclasses.field(default_factory=list)
    issuer: str | None = None
    audience: str | None = None
    identity_claim: str = "sub"


class JwtTokens:
    scheme = "Bearer"

    def __init__(self, options: JwtOptions) -> None:
        if bool(options.secret) == bool(options.public_key):
            raise JwtConfigError("--auth jwt needs exactly one of RUNLANE_JWT_SECRET (HS256/384/"
                                 "512) or RUNLANE_JWT_PUBLIC_KEY (a PEM key or PEM file path)")
        allowed = HMAC_ALGORITHMS if options.secret else KEY_ALGORITHMS
        algorithms = options.algorithms or (["HS256"] if options.secret else ["RS256", "ES256"])
        wrong = [a for a in algorithms if a not in allowed]
        if wrong:
            kind = "a secret" if options.secret else "a public key"
            raise JwtConfigError(f"JWT algorithm(s) {wrong} cannot be used with {kind}; "
                                 f"accepted: {sorted(allowed)}")
        key = options.secret
        if options.public_key:
            key = options.public_key
            if "-----BEGIN" not in key:
                path = Path(key)
                if not path.is_file():
                    raise JwtConfigError(f"JWT public key {key!r} is neither PEM text nor a file")
                key = path.read_text()
        assert key is not None  # exactly one of the two is set (checked above)
        if options.public_key:
            # Parsed once now, so a bad key stops start-up instead of failing every request.
            from cryptography.hazmat.primitives.serialization import load_pem_public_key

            try:
                load_pem_public_key(key.encode())
            except ValueError as exc:
                raise JwtConfigError(f"JWT public key is not a PEM public key: {exc}") from None
        self._key = key
        if options.secret and len(options.secret.encode()) < 32:
            raise JwtConfigError("RUNLANE_JWT_SECRET must be at least 32 bytes")
        self.options = options
        self.algorithms = algorithms

    def identity_of(self, token: str) -> Identity:
        required = ["exp"]
        if self.options.issuer:
            required.append("iss")
        if self.options.audience:
            required.append("aud")
        try:
            claims = jwt.decode(
                token, self._key, algorithms=self.algorithms, audience=self.options.audience,
                issuer=self.options.issuer, leeway=LEEWAY_SECONDS,
                options={"require": required, "verify_aud": bool(self.options.audience)},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("the token has expired", headers=_challenge("invalid_token",
                                                                        "expired")) from None
        except jwt.ImmatureSignatureError:
            raise AuthError("the token is not valid yet (nbf)",
                            headers=_challenge("invalid_token", "not yet valid")) from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"invalid token: {exc}",
                            headers=_challenge("invalid_token", str(exc))) from None
        subject = claims.get(self.options.identity_claim)
        if not isinstance(subject, str) or not subject:
            raise AuthError(f"invalid token: no {self.options.identity_claim!r} claim naming "
                            "the caller", headers=_challenge("invalid_token", "no identity"))
        return Identity(subject, permissions_of(claims.get("permissions", claims.get("scope"))),
                        claims.get("name"))

    async def authenticate(self, request: Request) -> Identity:
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            raise AuthError("authentication required: send a JWT as "
                            "Authorization: Bearer <token>")
        return self.identity_of(token)


def _challenge(error: str, description: str) -> dict[str, str]:
    description = description.replace('"', "'")
    return {"WWW-Authenticate": f'Bearer error="{error}", error_description="{description}"'}
