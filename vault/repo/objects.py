"""Standalone encrypted objects (index objects, version records): zstd-compressed, then sealed.

Layout: ``"VLTO" | version | type | [key generation] | nonce | ciphertext | tag``; the AAD binds the
header bytes, the vault id and the object's name (see vault.format). Objects are sealed under the keyring's
current generation and opened under whichever generation their header names. Decompression is capped by the
object's type (fmt.MAX_OBJECT_RAW: records 16 MiB, locks 64 KiB, index objects 256 MiB), so a hostile object
can't balloon memory: a frame that declares more is refused before anything is inflated, and one that declares
nothing is inflated in a stream that stops one byte past the cap.
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
