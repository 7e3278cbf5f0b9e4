"""One blob's way into and out of a pack: compress (zstd, kept raw when not smaller), then seal.

A blob is sealed under the data key of the current key generation, or, in a write-only put, under the key of the
put's ephemeral exchange with the vault's public key (vault.crypto.recipient): then its flags carry FLAG_SEALED and
its sealed bytes start with the put's ephemeral public key, from which a full key derives the same key.

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
from vault.crypto.keyring import BlobSealer, Keyring
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
    sealed: bytes  # [ephemeral public key, FLAG_SEALED only] | nonce | ciphertext | tag


def seal_blob(
    key: Keyring | BlobSealer,
    vault_id: bytes,
    blob_type: int,
    blob_id: bytes,
    data: bytes | memoryview,
    level: int,
    *,
    timer: StageTimer = NO_TIMING,
) -> SealedBlob:
    """Compress (when ``level`` > 0 and it helps) and encrypt one blob whose id is already known, with ``key``'s
    current generation or with a put's :class:`BlobSealer` (a write-only put makes one per put). The two steps
    are the stages :attr:`Stage.COMPRESS` (the probe included) and :attr:`Stage.SEAL` of ``timer``."""
    raw_length = len(data)
    if raw_length > fmt.MAX_BLOB_RAW:
        raise ValueError("blob too large")
    sealer = key if isinstance(key, BlobSealer) else key.blob_sealer()
    flags = sealer.flags
    payload: bytes | memoryview = data
    if level > 0 and raw_length > 0:
        with timer.stage(Stage.COMPRESS):
            if _worth_compressing(data, level):
                packed = _compressor(level).compress(data)
                if len(packed) < raw_length:
                    payload, flags = packed, flags | fmt.FLAG_ZSTD
    aad = fmt.blob_aad(vault_id, blob_type, flags, raw_length, blob_id)
    with timer.stage(Stage.SEAL):
        sealed = sealer.seal(payload, aad)
    return SealedBlob(blob_id, blob_type, flags, raw_length, sealed)


def open_payload(
    key: Keyring, vault_id: bytes, entry: fmt.BlobEntry, sealed: bytes, what: str, generation: int
) -> bytes:
    """Authenticate and decrypt one blob sealed under key ``generation`` (with FLAG_SEALED: to that generation's
    public key); returns its payload, still compressed when ``entry.flags`` says so. Raises IntegrityError."""
    if len(sealed) != entry.length:
        raise IntegrityError(f"{what} is truncated")
    aad = fmt.blob_aad(vault_id, entry.blob_type, entry.flags, entry.raw_length, entry.blob_id)
    gen = key.get(generation, what)
    if entry.flags & fmt.FLAG_SEALED:
        return gen.recipient_key.open(fmt.LABEL_SEALED_BLOB, "", sealed, aad, what)
    return gen.data.open(sealed, aad, what)


def reseal(key: Keyring, vault_id: bytes, entry: fmt.BlobEntry, sealed: bytes, generation: int) -> SealedBlob:
    """A blob sealed under key ``generation``, sealed under the current generation's data key (a new nonce, the
    same payload: nothing is decompressed). A blob already under the current generation's data key is returned
    as it is; one a write-only put sealed to a public key is always sealed again (without FLAG_SEALED), so the
    copy no longer depends on its put's ephemeral key. The caller has verified it. Raises IntegrityError."""
    flags = entry.flags
    if generation != key.current or flags & fmt.FLAG_SEALED:
        payload = open_payload(key, vault_id, entry, sealed, f"blob {entry.blob_id.hex()[:10]}", generation)
        flags &= ~fmt.FLAG_SEALED
        aad = fmt.blob_aad(vault_id, entry.blob_type, flags, entry.raw_length, entry.blob_id)
        sealed = key.data.seal(payload, aad)
    return SealedBlob(entry.blob_id, entry.blob_type, flags, entry.raw_length, sealed)


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
    data = decode_payload(entry, payload, what, timer=timer)
    if entry.flags & fmt.FLAG_SEALED:
        # Anyone who holds a write-only key can seal a blob to the public key under any id: its contents are
        # proved by recomputing the keyed id (a full key's blob is proved by the AEAD alone, which only full keys
        # can produce). About 3 GB/s of BLAKE3, released from the GIL.
        with timer.stage(Stage.HASH):
            verify_blob_id(key, data, entry, what)
    return data


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
