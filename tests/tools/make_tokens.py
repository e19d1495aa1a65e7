#!/usr/bin/env python3
"""Makes the keys and tokens the auth end-to-end tests use, with PyJWT and cryptography (a real
JOSE library, not the one the gateway uses).

Usage: make_tokens.py OUTDIR

Writes OUTDIR/jwks.json (the public keys the JWKS endpoint serves) and OUTDIR/tokens.json
(name -> token), and OUTDIR/hs_secret.txt. Valid tokens expire an hour from now.
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

ISS = "https://issuer.test"
AUD = "orders"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    now = int(time.time())
    rsa1 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec1 = ec.generate_private_key(ec.SECP256R1())
    ed1 = ed25519.Ed25519PrivateKey.generate()

    def jwk(key, kid, alg):
        if isinstance(key, rsa.RSAPrivateKey):
            d = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            d = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        else:
            d = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
        d["kid"] = kid
        d["use"] = "sig"
        if alg:
            d["alg"] = alg
        return d

    jwks = {"keys": [jwk(rsa1, "rsa1", None), jwk(ec1, "ec1", "ES256"), jwk(ed1, "ed1", "EdDSA")]}
    with open(os.path.join(out, "jwks.json"), "w") as f:
        json.dump(jwks, f)
    hs_secret = "a-shared-secret-of-enough-length-0123456789"
    with open(os.path.join(out, "hs_secret.txt"), "w") as f:
        f.write(hs_secret)

    base = {"iss": ISS, "aud": AUD, "sub": "user-42", "iat": now, "exp": now + 3600}

    def claims(**kw):
        c = dict(base)
        for k, v in kw.items():
            if v is None:
                c.pop(k, None)
            else:
                c[k] = v
        return c

    def sign(key, alg, kid, **kw):
        return jwt.encode(claims(**kw), key, algorithm=alg, headers={"kid": kid} if kid else None)

    rsa1_public_pem = rsa1.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def hs_with(secret: bytes, kid):
        # PyJWT refuses a PEM as an HMAC secret (rightly); the attack is built by hand.
        header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
        payload = b64(json.dumps(claims()).encode())
        sig = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{b64(sig)}"

    none_header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "rsa1"}).encode())
    tokens = {
        "rs256": sign(rsa1, "RS256", "rsa1"),
        "ps256": sign(rsa1, "PS256", "rsa1"),
        "es256": sign(ec1, "ES256", "ec1"),
        "eddsa": sign(ed1, "EdDSA", "ed1"),
        "scoped": sign(rsa1, "RS256", "rsa1", scope="orders:read profile"),
        "scp_list": sign(rsa1, "RS256", "rsa1", scp=["orders:read"]),
        "unscoped": sign(rsa1, "RS256", "rsa1", scope="profile"),
        "hs_valid": jwt.encode(claims(), hs_secret, algorithm="HS256"),
        "hs_alice": jwt.encode(claims(sub="alice"), hs_secret, algorithm="HS256"),
        "hs_bob": jwt.encode(claims(sub="bob"), hs_secret, algorithm="HS256"),
        # Forged or broken: every one must be 401.
        "alg_none": f"{none_header}.{b64(json.dumps(claims()).encode())}.",
        "hs256_with_rsa_public_key": hs_with(rsa1_public_pem, "rsa1"),
        "other_key_same_kid": sign(rsa2, "RS256", "rsa1"),
        "expired": sign(rsa1, "RS256", "rsa1", exp=now - 3600, iat=now - 7200),
        "not_yet_valid": sign(rsa1, "RS256", "rsa1", nbf=now + 3600),
        "wrong_issuer": sign(rsa1, "RS256", "rsa1", iss="https://evil.test"),
        "wrong_audience": sign(rsa1, "RS256", "rsa1", aud="billing"),
        "no_exp": sign(rsa1, "RS256", "rsa1", exp=None),
        "exp_as_string": sign(rsa1, "RS256", "rsa1", exp=str(now + 3600)),
        "garbage": "not.a.token",
        "es256_key_as_rs256": sign(rsa1, "RS256", "ec1"),
        "tampered": sign(rsa1, "RS256", "rsa1")[:-4] + "AAAA",
    }
    # As Amazon Cognito issues them: access tokens name their app client in `client_id` and
    # carry no `aud`; ID tokens have `aud`.
    pool = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_TESTPOOL"
    cognito = {"iss": pool, "sub": "user-7", "iat": now, "exp": now + 3600, "aud": None,
               "token_use": "access", "client_id": "app-client-1",
               "scope": "aws.cognito.signin.user.admin", "username": "ann"}
    tokens["cognito_access"] = sign(rsa1, "RS256", "rsa1", **cognito)
    tokens["cognito_id"] = sign(rsa1, "RS256", "rsa1", **dict(cognito, token_use="id", client_id=None,
                                                              aud="app-client-1", email="ann@example.com"))
    tokens["cognito_other_client"] = sign(rsa1, "RS256", "rsa1", **dict(cognito, client_id="app-client-2"))
    tokens["cognito_other_pool"] = sign(rsa1, "RS256", "rsa1",
                                        **dict(cognito, iss="https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_OTHER"))
    for i in range(50):
        tokens[f"unknown_kid_{i}"] = sign(rsa1, "RS256", f"storm-{i}")
    with open(os.path.join(out, "tokens.json"), "w") as f:
        json.dump(tokens, f, indent=1)


if __name__ == "__main__":
    main()
