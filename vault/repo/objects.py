"""Standalone encrypted objects (index objects, version records): zstd-compressed, then sealed.

Layout: ``"VLTO" | version | type | nonce | ciphertext | tag``; the AAD binds the first six bytes, the vault
id and the object's name (see vault.format). Decompression is capped at MAX_METADATA_RAW, so a hostile
object can't balloon memory.
"""

from __future__ import annotations

import zstandard

from vault import format as fmt
from vault.crypto.aead import Aead
from vault.errors import IntegrityError
from vault.storage.base import Handle


def seal_object(aead: Aead, vault_id: bytes, handle: Handle, obj_type: int, payload: bytes) -> bytes:
    prefix = fmt.object_prefix(obj_type)
    body = zstandard.ZstdCompressor(level=3).compress(payload)
    return prefix + aead.seal(body, fmt.object_aad(prefix, vault_id, handle.name))


def open_object(
    aead: Aead, vault_id: bytes, handle: Handle, obj_type: int | tuple[int, ...], raw: bytes
) -> bytes:
    """Authenticate, decrypt and decompress. Raises IntegrityError / UnsupportedVersionError."""
    what = f"object {handle}"
    prefix = fmt.parse_object_prefix(raw, obj_type, what)
    body = aead.open(memoryview(raw)[fmt.OBJECT_PREFIX_SIZE :], fmt.object_aad(prefix, vault_id, handle.name), what)
    try:
        # Authenticated bytes, but still cap the output: a bug elsewhere must not become a huge allocation.
        # max_output_size only applies to frames without a declared content size, so check that one too.
        if zstandard.frame_content_size(body) > fmt.MAX_METADATA_RAW:
            raise IntegrityError(f"{what} is too large")
        return zstandard.ZstdDecompressor().decompress(body, max_output_size=fmt.MAX_METADATA_RAW)
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"{what} does not decompress") from exc
