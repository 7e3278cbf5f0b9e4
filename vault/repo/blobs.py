"""One blob's way into and out of a pack: compress (zstd, kept raw when not smaller), then seal.

These are pure functions of their arguments plus a per-thread zstd context (python-zstandard's objects are not
thread-safe), so the pipeline runs them on any worker thread. zstd, AES-GCM and BLAKE3 release the GIL.
The writer and the reader pass their pipeline's stage timer (:mod:`vault.pipeline.timing`); untimed by default.
"""

from __future__ import annotations

import hmac
import threading
from dataclasses import dataclass

import zstandard

from vault import format as fmt
from vault.crypto.keyring import Keyring
from vault.errors import IntegrityError
from vault.pipeline.timing import NO_TIMING, Stage, StageTimer

_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cache: dict[int, zstandard.ZstdCompressor] = getattr(_local, "cctx", None) or {}
    _local.cctx = cache
    cctx = cache.get(level)
    if cctx is None:
        # write_content_size lets the reader check the size before allocating.
        cctx = cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
    return cctx


def _decompressor() -> zstandard.ZstdDecompressor:
    dctx = getattr(_local, "dctx", None)
    if dctx is None:
        dctx = _local.dctx = zstandard.ZstdDecompressor()
    return dctx


PROBE_SIZE = 64 * 1024
PROBE_MIN_SAVING = 0.03


def _worth_compressing(data: bytes | memoryview, level: int) -> bool:
    """Compress a 64 KiB sample first: already-compressed data (photos, video, archives, encrypted files) is
    most of a typical backup's bytes, and zstd spends as long failing on it as succeeding elsewhere. A chunk
    whose sample saves under 3% is stored raw, as it would be after a full attempt (it is kept raw when
    compressing does not make it smaller). Small chunks are simply compressed."""
    if len(data) <= 2 * PROBE_SIZE:
        return True
    sample = memoryview(data)[:PROBE_SIZE]
    return len(_compressor(level).compress(sample)) < PROBE_SIZE * (1 - PROBE_MIN_SAVING)


@dataclass(frozen=True, slots=True)
class SealedBlob:
    blob_id: bytes
    blob_type: int
    flags: int
    raw_length: int
    sealed: bytes  # nonce | ciphertext | tag


def seal_blob(
    key: Keyring,
    vault_id: bytes,
    blob_type: int,
    blob_id: bytes,
    data: bytes | memoryview,
    level: int,
    *,
    timer: StageTimer = NO_TIMING,
) -> SealedBlob:
    """Compress (when ``level`` > 0 and it helps) and encrypt one blob whose id is already known. The two steps
    are the stages :attr:`Stage.COMPRESS` (the probe included) and :attr:`Stage.SEAL` of ``timer``."""
    raw_length = len(data)
    if raw_length > fmt.MAX_BLOB_RAW:
        raise ValueError("blob too large")
    flags = 0
    payload: bytes | memoryview = data
    if level > 0 and raw_length > 0:
        with timer.stage(Stage.COMPRESS):
            if _worth_compressing(data, level):
                packed = _compressor(level).compress(data)
                if len(packed) < raw_length:
                    payload, flags = packed, fmt.FLAG_ZSTD
    aad = fmt.blob_aad(vault_id, blob_type, flags, raw_length, blob_id)
    with timer.stage(Stage.SEAL):
        sealed = key.data.seal(payload, aad)
    return SealedBlob(blob_id, blob_type, flags, raw_length, sealed)


def open_payload(
    key: Keyring, vault_id: bytes, entry: fmt.BlobEntry, sealed: bytes, what: str, generation: int
) -> bytes:
    """Authenticate and decrypt one blob sealed under key ``generation``; returns its payload, still compressed
    when ``entry.flags`` says so. Raises IntegrityError."""
    if len(sealed) != entry.length:
        raise IntegrityError(f"{what} is truncated")
    aad = fmt.blob_aad(vault_id, entry.blob_type, entry.flags, entry.raw_length, entry.blob_id)
    return key.get(generation, what).data.open(sealed, aad, what)


def reseal(key: Keyring, vault_id: bytes, entry: fmt.BlobEntry, sealed: bytes, generation: int) -> SealedBlob:
    """A blob sealed under key ``generation``, sealed under the current generation (a new nonce, the same
    payload: nothing is decompressed). A blob already under the current generation is returned as it is.
    The caller has verified it. Raises IntegrityError."""
    if generation != key.current:
        payload = open_payload(key, vault_id, entry, sealed, f"blob {entry.blob_id.hex()[:10]}", generation)
        aad = fmt.blob_aad(vault_id, entry.blob_type, entry.flags, entry.raw_length, entry.blob_id)
        sealed = key.data.seal(payload, aad)
    return SealedBlob(entry.blob_id, entry.blob_type, entry.flags, entry.raw_length, sealed)


def open_blob(
    key: Keyring,
    vault_id: bytes,
    entry: fmt.BlobEntry,
    sealed: bytes,
    what: str,
    generation: int,
    *,
    timer: StageTimer = NO_TIMING,
) -> bytes:
    """Authenticate, decrypt (under key ``generation``) and decompress one blob; the result is exactly
    ``entry.raw_length`` bytes. Raises IntegrityError for anything altered, truncated or inconsistent. The two
    steps are the stages :attr:`Stage.OPEN` and :attr:`Stage.DECOMPRESS` of ``timer``."""
    with timer.stage(Stage.OPEN):
        payload = open_payload(key, vault_id, entry, sealed, what, generation)
    return decode_payload(entry, payload, what, timer=timer)


def decode_payload(entry: fmt.BlobEntry, payload: bytes, what: str, *, timer: StageTimer = NO_TIMING) -> bytes:
    """A blob's authenticated payload (from :func:`open_payload`) as plaintext: decompressed when ``entry.flags``
    says so, never to more than ``entry.raw_length`` bytes, and exactly that long. IntegrityError otherwise.
    (`copy` keeps the compressed payload to seal it again and needs the plaintext only for the blob's id.)"""
    if entry.flags & fmt.FLAG_ZSTD:
        try:
            # python-zstandard ignores max_output_size when the frame declares its content size and allocates
            # whatever the frame claims, so check the declared size against the entry first.
            declared = zstandard.frame_content_size(payload)
            if declared not in (-1, entry.raw_length):
                raise IntegrityError(f"{what} has the wrong length")
            with timer.stage(Stage.DECOMPRESS):
                data = _decompressor().decompress(payload, max_output_size=entry.raw_length)
        except zstandard.ZstdError as exc:
            raise IntegrityError(f"{what} does not decompress") from exc
    else:
        data = payload
    if len(data) != entry.raw_length:
        raise IntegrityError(f"{what} has the wrong length")
    return data


def verify_blob_id(key: Keyring, data: bytes, entry: fmt.BlobEntry, what: str) -> None:
    """Recompute the keyed hash (check --read-data): proves the plaintext is the one the id names."""
    if not hmac.compare_digest(key.blob_id(data, entry.blob_type), entry.blob_id):  # a MAC: constant time
        raise IntegrityError(f"{what} does not match its id")
