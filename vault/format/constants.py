"""The format's constants: versions, sizes, bounds, HKDF labels, magics, AAD prefixes, type bytes.

Readers accept ``FORMAT_VERSION_MIN..FORMAT_VERSION_MAX``; writers emit ``FORMAT_VERSION`` (restic's
Min/Max/Stable); :func:`check_version` refuses anything else.
"""

from __future__ import annotations

from vault.errors import IntegrityError, UnsupportedVersionError

# -- versions ------------------------------------------------------------------------------------------------
FORMAT_VERSION = 1
FORMAT_VERSION_MIN = 1
FORMAT_VERSION_MAX = 2
# Version 2 adds key generations (`vault rekey`): packs, encrypted objects and key slots written under a
# generation other than 0 carry its number. A vault that was never rekeyed writes version 1 bytes only, so
# everything made before generations existed reads and is written exactly as before.
FORMAT_VERSION_GENERATIONS = 2
MAX_GENERATION = 2**32 - 1
# Version 3 is a config version only: the vault has a retention (S3 Object Lock, `vault init --retention`),
# recorded as the config's `retention_days`. Its objects are version 1 or 2 bytes as before; the number is
# there so that a reader that knows nothing of retention refuses the vault instead of writing unlocked objects
# into it or hiding locked ones behind delete markers (docs/format.md, "Config").
FORMAT_VERSION_RETENTION = 3
CONFIG_VERSION_MAX = FORMAT_VERSION_RETENTION  # the config may say 3; objects, packs and slots at most 2
MAX_RETENTION_DAYS = 36500

# -- sizes ---------------------------------------------------------------------------------------------------
KEY_SIZE = 32  # AES-256-GCM keys, BLAKE3 keys, master key
NONCE_SIZE = 12  # AES-GCM's 96-bit nonce, random per encryption
TAG_SIZE = 16
ID_SIZE = 32  # blob ids (keyed BLAKE3) and pack ids (random)
VAULT_ID_SIZE = 16
SALT_SIZE = 16
AEAD_OVERHEAD = NONCE_SIZE + TAG_SIZE

# Chunking (FastCDC): pyfastcdc's real average is avg + min, so this gives ~1.25 MiB average chunks.
CHUNK_MIN = 256 * 1024
CHUNK_AVG = 1024 * 1024
CHUNK_MAX = 4 * 1024 * 1024

PACK_TARGET_SIZE = 16 * 1024 * 1024
# A blob's plaintext may be at most this big: a chunk is at most CHUNK_MAX; trees may be larger.
MAX_BLOB_RAW = 64 * 1024 * 1024
# Upper bound on any decoded metadata object (index, version record) after decompression.
MAX_METADATA_RAW = 256 * 1024 * 1024
# A pack's header can't list more blobs than this (16 MiB packs of tiny blobs stay far below it).
MAX_PACK_ENTRIES = 1_000_000
# No pack vault writes is larger: the target, plus one blob that crossed it, plus a header of tiny blobs.
# Readers that load whole packs refuse anything bigger before allocating for it.
MAX_PACK_SIZE = 128 * 1024 * 1024

# -- HKDF labels: one subkey per purpose, derived from the master key ----------------------------------------
LABEL_DATA = b"vault/v1/data"  # AEAD key for blobs
LABEL_META = b"vault/v1/meta"  # AEAD key for pack headers, index objects and version records
LABEL_ID = b"vault/v1/id"  # BLAKE3 key for data blob ids
LABEL_TREE_ID = b"vault/v1/id/tree"  # BLAKE3 key for tree blob ids: a file can never collide with a tree
LABEL_CHUNKER = b"vault/v1/chunker"  # seed of the FastCDC gear table

# -- magics (4 bytes) and AAD prefixes -----------------------------------------------------------------------
PACK_MAGIC = b"VLTP"
OBJECT_MAGIC = b"VLTO"
AAD_BLOB = b"vault/blob"
AAD_PACK_HEADER = b"vault/pack-header"
AAD_OBJECT = b"vault/object"
AAD_KEY_SLOT = b"vault/key-slot"


class BlobType:
    DATA = 1
    TREE = 2
    ALL = (1, 2)


class ObjectType:
    """The type byte of standalone encrypted objects (bound into their AAD)."""

    INDEX = 1
    VERSION = 2
    LOCK = 3
    INDEX_CHECKPOINT = 4  # a one-pack index written while a put runs; merged into an INDEX when it ends
    ALL = (1, 2, 3, 4)


FLAG_ZSTD = 0x01  # the blob's plaintext was zstd-compressed before encryption
KNOWN_FLAGS = FLAG_ZSTD


def check_version(version: int, what: str, maximum: int = FORMAT_VERSION_MAX) -> None:
    """Refuse a version this program does not read (documents with their own numbering, like trees and
    version records, pass their own ``maximum``). Raises UnsupportedVersionError or IntegrityError."""
    if version > maximum:
        raise UnsupportedVersionError(
            f"{what} uses format version {version}, newer than this program reads "
            f"({maximum}); upgrade vault to read it"
        )
    if version < FORMAT_VERSION_MIN:
        raise IntegrityError(f"{what} has an invalid format version {version}")
