"""Solana transaction signatures without a Solana dependency: base58 (Bitcoin alphabet) that
decodes to exactly 64 bytes (an ed25519 signature)."""

from __future__ import annotations

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
SIGNATURE_BYTES = 64
# 64 bytes are at most 88 base58 characters; a longer string cannot be a signature.
MAX_SIGNATURE_CHARS = 88


def b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        try:
            number = number * 58 + _INDEX[char]
        except KeyError:
            raise ValueError(f"{char!r} is not a base58 character") from None
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    # Each leading '1' encodes one leading zero byte.
    return b"\x00" * (len(text) - len(text.lstrip("1"))) + body


def signature_error(text: str) -> str | None:
    """Why `text` is not a Solana transaction signature, or None if it is one."""
    if not text or len(text) > MAX_SIGNATURE_CHARS:
        return f"a Solana signature is 1 to {MAX_SIGNATURE_CHARS} base58 characters, got {len(text)}"
    try:
        raw = b58decode(text)
    except ValueError as exc:
        return str(exc)
    if len(raw) != SIGNATURE_BYTES:
        return f"a Solana signature decodes to {SIGNATURE_BYTES} bytes, this one to {len(raw)} bytes"
    return None


def b58encode(raw: bytes) -> str:
    number = int.from_bytes(raw, "big")
    out = ""
    while number:
        number, rem = divmod(number, 58)
        out = ALPHABET[rem] + out
    return "1" * (len(raw) - len(raw.lstrip(b"\x00"))) + out
