"""Keys and tokens for the Istio JWT tests: real RSA and EC keys, their JWKS, tokens as issuers sign them."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://issuer.example.com"
AUDIENCE = "https://iris-classifier.models.example.com"


@dataclass(frozen=True)
class SigningKey:
    """One private key, its key id and the algorithm it signs with."""

    private: Any
    kid: str
    algorithm: str

    def jwk(self) -> dict[str, Any]:
        """Return the public JWK of this key."""
        codec = RSAAlgorithm if self.algorithm.startswith("RS") else ECAlgorithm
        return {
            **codec.to_jwk(self.private.public_key(), as_dict=True),
            "kid": self.kid,
            "alg": self.algorithm,
        }

    def token(
        self, *, issuer: str = ISSUER, audience: str | list[str] | None = AUDIENCE, **claims: Any
    ) -> str:
        """Return a token signed by this key: ``sub`` ``caller``, valid for 10 minutes unless overridden."""
        now = int(time.time())
        payload = {"iss": issuer, "sub": "caller", "iat": now, "exp": now + 600, **claims}
        if audience is not None:
            payload["aud"] = audience
        return jwt.encode(payload, self.private, algorithm=self.algorithm, headers={"kid": self.kid})


def rsa_key(kid: str = "rsa-1") -> SigningKey:
    """Return a new 2048-bit RSA key signing RS256."""
    return SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=2048), kid, "RS256")


def ec_key(kid: str = "ec-1") -> SigningKey:
    """Return a new P-256 key signing ES256."""
    return SigningKey(ec.generate_private_key(ec.SECP256R1()), kid, "ES256")


def jwks(*keys: SigningKey) -> str:
    """Return the JSON Web Key Set of the keys' public halves."""
    return json.dumps({"keys": [key.jwk() for key in keys]})
