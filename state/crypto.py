"""Ed25519 keys, addresses and chain-id-bound signatures (DESIGN section 2).

Every signature is over ``pack([domain, chain_id, payload])`` where ``domain`` names the kind of
message ("attrchain/tx/v1", "attrchain/vote/v1", ...). A signature for one chain or one kind of
message therefore never verifies as another.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

from state.codec import pack

DOMAIN_TX = "attrchain/tx/v1"
DOMAIN_VOTE = "attrchain/vote/v1"
DOMAIN_PROPOSAL = "attrchain/proposal/v1"


class KeyFileError(ValueError):
    """A key file that cannot be read or does not hold a valid Ed25519 key."""


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def address_of(public_key: bytes) -> bytes:
    """An address is the first 20 bytes of sha256(public key)."""
    return hashlib.sha256(public_key).digest()[:20]


def to_hex(data: bytes) -> str:
    return "0x" + data.hex()


def from_hex(text: str, size: int | None = None) -> bytes:
    """Parse 0x-prefixed hex (the prefix is required); ``size`` requires an exact length."""
    if not isinstance(text, str) or not text.startswith("0x"):
        raise ValueError("expected a 0x-prefixed hex string")
    try:
        data = bytes.fromhex(text[2:])
    except ValueError as exc:
        raise ValueError("invalid hex") from exc
    if size is not None and len(data) != size:
        raise ValueError(f"expected {size} bytes, got {len(data)}")
    return data


def sign_bytes(domain: str, chain_id: str, payload: Any) -> bytes:
    """The exact bytes that are signed: msgpack([domain, chain_id, payload_wire])."""
    return pack([domain, chain_id, payload])


_pubkey_cache: dict[bytes, Ed25519PublicKey] = {}


def verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``message`` by ``public_key``.

    The rule is OpenSSL's (``cryptography``; DESIGN section 2). libsodium checks the same
    cofactorless equation in about half the time (44 against 90 us here) and is stricter: it also
    refuses small-order keys and R, and non-canonical keys, which OpenSSL accepts. So a signature
    libsodium accepts is valid, and one it refuses is decided by OpenSSL: the answer is always
    OpenSSL's, and a valid signature, the common case, costs libsodium's time.
    """
    if len(public_key) != 32 or len(signature) != 64:
        return False
    try:
        crypto_sign_open(signature + message, public_key)
        return True
    except BadSignatureError:
        return verify_openssl(public_key, signature, message)


def verify_openssl(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """The rule itself: ``cryptography``'s (OpenSSL's) Ed25519 verification."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    pk = _pubkey_cache.get(public_key)
    if pk is None:
        try:
            pk = Ed25519PublicKey.from_public_bytes(public_key)
        except ValueError:
            return False
        if len(_pubkey_cache) > 100_000:
            _pubkey_cache.clear()
        _pubkey_cache[public_key] = pk
    try:
        pk.verify(signature, message)
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class PrivateKey:
    """An Ed25519 signing key built from its 32-byte seed."""

    seed: bytes

    def __post_init__(self) -> None:
        if len(self.seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        key = Ed25519PrivateKey.from_private_bytes(self.seed)
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "public_key", key.public_key().public_bytes_raw())

    public_key: bytes = b""  # set in __post_init__

    @classmethod
    def generate(cls) -> "PrivateKey":
        return cls(os.urandom(32))

    @classmethod
    def from_int(cls, n: int) -> "PrivateKey":
        """Deterministic test/devnet key number ``n``."""
        return cls(sha256(b"attrchain-test-key" + n.to_bytes(8, "big")))

    @property
    def address(self) -> bytes:
        return address_of(self.public_key)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)  # type: ignore[attr-defined,no-any-return]

    def __repr__(self) -> str:
        return f"PrivateKey(address={to_hex(self.address)})"

    # Key files: JSON with the seed, public key and address, all 0x hex.
    def to_json(self) -> dict[str, str]:
        return {
            "type": "ed25519",
            "seed": to_hex(self.seed),
            "public_key": to_hex(self.public_key),
            "address": to_hex(self.address),
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(p.suffix + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(self.to_json(), fh, indent=2)
            fh.write("\n")
        os.replace(tmp, p)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "PrivateKey":
        try:
            data = json.loads(Path(path).read_text())
            key = cls(from_hex(data["seed"], 32))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KeyFileError(f"{path}: not a valid attrchain key file ({exc})") from exc
        if "public_key" in data and data["public_key"] != to_hex(key.public_key):
            raise KeyFileError(f"{path}: public key does not match the seed")
        return key
