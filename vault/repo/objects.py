"""Standalone encrypted objects (index objects, version records): zstd-compressed, then sealed.

Layout: ``"VLTO" | version | type | [key generation] | nonce | ciphertext | tag``; the AAD binds the
header bytes, the vault id and the object's name (see vault.format). Objects are sealed under the keyring's
current generation and opened under whichever generation their header names. Decompression is capped at
MAX_METADATA_RAW, so a hostile object can't balloon memory.
"""

from __future__ import annotations

import zstandard

from vault import format as fmt
from vault.crypto.keyring import Keyring
from vault.errors import IntegrityError
from vault.storage.base import Handle


def seal_object(key: Keyring, vault_id: bytes, handle: Handle, obj_type: int, payload: bytes) -> bytes:
    prefix = fmt.object_prefix(obj_type, key.current)
    body = zstandard.ZstdCompressor(level=3).compress(payload)
    return prefix + key.meta.seal(body, fmt.object_aad(prefix, vault_id, handle.name))


def object_generation(raw: bytes, obj_type: int | tuple[int, ...], what: str) -> int:
    """The key generation a stored object names in its header (not yet authenticated). IntegrityError."""
    return fmt.parse_object_prefix(raw, obj_type, what)[1]


def open_object(
    key: Keyring, vault_id: bytes, handle: Handle, obj_type: int | tuple[int, ...], raw: bytes
) -> bytes:
    """Authenticate, decrypt and decompress, under the generation the object's header names.
    Raises IntegrityError / UnsupportedVersionError."""
    what = f"object {handle}"
    prefix, generation = fmt.parse_object_prefix(raw, obj_type, what)
    aead = key.get(generation, what).meta
    body = aead.open(memoryview(raw)[len(prefix) :], fmt.object_aad(prefix, vault_id, handle.name), what)
    try:
        # Authenticated bytes, but still cap the output: a bug elsewhere must not become a huge allocation.
        # max_output_size only applies to frames without a declared content size, so check that one too.
        if zstandard.frame_content_size(body) > fmt.MAX_METADATA_RAW:
            raise IntegrityError(f"{what} is too large")
        return zstandard.ZstdDecompressor().decompress(body, max_output_size=fmt.MAX_METADATA_RAW)
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"{what} does not decompress") from exc
