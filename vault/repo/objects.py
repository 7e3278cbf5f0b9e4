"""Standalone encrypted objects (index objects, version records, locks): zstd-compressed, then sealed.

Layout: ``"VLTO" | version | type | [key generation] | [ephemeral key] | nonce | ciphertext | tag``; the AAD binds
the header bytes, the vault id and the object's name (see vault.format). A full keyring seals under its current
generation's metadata key; a write-only keyring seals to the public key of its generation, under a key of the
object's own (a fresh ephemeral exchange: vault.crypto.recipient); locks in a version 4 vault are sealed under the
lock key every key holds. Objects are opened under whatever their header names. Decompression is capped by the
object's type (fmt.MAX_OBJECT_RAW: records 16 MiB, locks 64 KiB, index objects and segments 256 MiB), so a hostile
object can't balloon memory: a frame that declares more is refused before anything is inflated, and one that
declares nothing is inflated in a stream that stops one byte past the cap.
"""

from __future__ import annotations

import zstandard

from vault import format as fmt
from vault.crypto.keyring import Keyring
from vault.errors import IntegrityError
from vault.storage.base import Handle


def seal_object(key: Keyring, vault_id: bytes, handle: Handle, obj_type: int, payload: bytes) -> bytes:
    """Compress and seal ``payload`` as object ``handle``: under the current generation's metadata key, or (a
    write-only keyring) to its generation's public key."""
    body = zstandard.ZstdCompressor(level=3).compress(payload)
    if key.write_only:
        epk, aead = key.recipient().sealer(fmt.LABEL_SEALED_OBJECT, handle.name)
        prefix = fmt.sealed_prefix(obj_type, key.current, epk)
        return prefix + aead.seal(body, fmt.object_aad(prefix, vault_id, handle.name))
    prefix = fmt.object_prefix(obj_type, key.current)
    return prefix + key.meta.seal(body, fmt.object_aad(prefix, vault_id, handle.name))


def seal_lock(key: Keyring, vault_id: bytes, handle: Handle, payload: bytes, lock_key: bool) -> bytes:
    """A lock object: under the lock key (``lock_key``: a version 4 vault, where write-only keys must read it),
    else as any object (:func:`seal_object`)."""
    if not lock_key:
        return seal_object(key, vault_id, handle, fmt.ObjectType.LOCK, payload)
    body = zstandard.ZstdCompressor(level=3).compress(payload)
    prefix = fmt.lock_prefix()
    return prefix + key.lock_aead.seal(body, fmt.object_aad(prefix, vault_id, handle.name))


def object_generation(raw: bytes, obj_type: int | tuple[int, ...], what: str) -> int:
    """The key generation a stored object names in its header (not yet authenticated). IntegrityError."""
    return fmt.parse_object_prefix(raw, obj_type, what)[1]


def open_object(
    key: Keyring, vault_id: bytes, handle: Handle, obj_type: int | tuple[int, ...], raw: bytes
) -> bytes:
    """Authenticate, decrypt and decompress, under the key the object's header names. Raises IntegrityError /
    UnsupportedVersionError; NotPermittedError when a write-only keyring is asked to open anything but a lock."""
    what = f"object {handle}"
    header = fmt.parse_object_header(raw, obj_type, what)
    aad = fmt.object_aad(header.prefix, vault_id, handle.name)
    sealed = memoryview(raw)[len(header.prefix) :]
    if header.version == fmt.HEADER_LOCK_KEY:
        body = key.lock_aead.open(sealed, aad, what)
    elif header.version == fmt.HEADER_SEALED:
        opener = key.get(header.generation, what).recipient_key.opener(
            header.ephemeral, fmt.LABEL_SEALED_OBJECT, handle.name, what
        )
        body = opener.open(sealed, aad, what)
    else:
        body = key.get(header.generation, what).meta.open(sealed, aad, what)
    # Authenticated bytes, but a key holder (or a bug) can still have sealed a frame that inflates a thousandfold.
    return _decompress(body, fmt.MAX_OBJECT_RAW[fmt.object_type(raw)], what)


_STREAM_BLOCK = 1 << 20


def _decompress(body: bytes, cap: int, what: str) -> bytes:
    """The zstd frame ``body`` decompressed, at most ``cap`` bytes of it. IntegrityError when it would be more
    or does not decompress."""
    try:
        declared = zstandard.frame_content_size(body)
        if declared > cap:
            raise IntegrityError(f"{what} is too large")
        dctx = zstandard.ZstdDecompressor()
        if declared >= 0:  # one allocation of the declared size (within the cap); vault's writers declare it
            return dctx.decompress(body)
        # No declared size: inflate block by block and stop one byte past the cap.
        parts: list[bytes] = []
        total = 0
        with dctx.stream_reader(body) as reader:
            while part := reader.read(min(_STREAM_BLOCK, cap + 1 - total)):
                total += len(part)
                if total > cap:
                    raise IntegrityError(f"{what} is too large")
                parts.append(part)
        return b"".join(parts)
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"{what} does not decompress") from exc
