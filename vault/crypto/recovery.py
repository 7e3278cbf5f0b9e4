"""Recovery keys: a high-entropy key a person can print, store offline, and type back.

30 random bytes (240 bits) and a 5-byte checksum (keyed BLAKE2b), in base32: 56 characters written as 14
groups of 4, like ``ABCD-EFGH-…``. Typing it back is forgiving: case, spaces and dashes don't matter, and the
digits 0, 1 and 8 (which base32 does not use) are read as O, I and B. A mistyped key fails the checksum, so
it is not mistaken for a recovery key: it is tried as an ordinary password, which no slot takes (exit 12, with
a hint that it looks like a recovery key with a typo).

A recovery key opens its own key slot like a password does (``--password-file`` takes it). Its slot uses the
minimum argon2id cost: a 240-bit key cannot be guessed, so a slow hash would only slow down its owner.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

KEY_BYTES = 30
CHECK_BYTES = 5
GROUP = 4
_CHECK_KEY = b"vault/recovery-key/v1"
_TYPO = str.maketrans({"0": "O", "1": "I", "8": "B"})


def _checksum(key: bytes) -> bytes:
    return hashlib.blake2b(key, key=_CHECK_KEY, digest_size=CHECK_BYTES).digest()


def _format(raw: bytes) -> str:
    text = base64.b32encode(raw).decode("ascii")
    return "-".join(text[i : i + GROUP] for i in range(0, len(text), GROUP))


def generate() -> str:
    key = os.urandom(KEY_BYTES)
    return _format(key + _checksum(key))


def normalize(text: bytes | str) -> bytes | None:
    """The canonical form of a recovery key, or None when ``text`` is not one (then it is a password)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            return None
    compact = "".join(text.split()).replace("-", "").upper().translate(_TYPO)
    if len(compact) != (KEY_BYTES + CHECK_BYTES) * 8 // 5:
        return None
    try:
        raw = base64.b32decode(compact)
    except ValueError:
        return None
    key, check = raw[:KEY_BYTES], raw[KEY_BYTES:]
    if not hmac.compare_digest(_checksum(key), check):
        return None
    return _format(raw).encode("ascii")


_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


def looks_like_a_mistyped_key(text: bytes | str) -> bool:
    """True when ``text`` is not a valid recovery key but has its shape (base32 in about 56 characters): the
    user most likely typed a recovery key with a typo, and deserves that hint rather than "wrong password"."""
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            return False
    if normalize(text) is not None:
        return False
    compact = "".join(text.split()).replace("-", "").upper().translate(_TYPO)
    full = (KEY_BYTES + CHECK_BYTES) * 8 // 5
    return full - 3 <= len(compact) <= full + 3 and set(compact) <= _ALPHABET


def write_key_file(path: str, key: str, location: str, created: str) -> None:
    """Write the key as the file's first line (so --password-file reads it), mode 0600, never over an
    existing file. Raises ConflictError when the file exists, StorageError when it can't be written."""
    from vault.errors import ConflictError, StorageError

    body = (
        f"{key}\n"
        f"# vault recovery key, created {created}, for the vault at {location}.\n"
        "# It opens the vault like a password: `vault --password-file THIS_FILE ...`.\n"
        "# Print it and keep it offline. Anyone who has it and the storage can read everything.\n"
    ).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise ConflictError(f"{path} exists already; the recovery key is never written over a file") from None
    except OSError as exc:
        raise StorageError(f"cannot write the recovery key to {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, body)
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        os.unlink(path)
        raise StorageError(f"cannot write the recovery key to {path}: {exc.strerror}") from None
    os.close(fd)
