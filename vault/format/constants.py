"""The format's constants: versions, sizes, bounds, HKDF labels, magics, AAD prefixes, type bytes.

Readers accept ``FORMAT_VERSION_MIN..FORMAT_VERSION_MAX``; writers emit ``FORMAT_VERSION`` (restic's
Min/Max/Stable); :func:`check_version` refuses anything else.
"""

from __future__ import annotations

from vault.errors import IntegrityError, UnsupportedVersionError

# -- versions ------------------------------------------------------------------------------------------------
FORMAT_VERSION = 1
FORMAT_VERSION_MIN = 1
FORMAT_VERSION_MAX = 4
# Version 2 adds key generations (`vault rekey`): packs, encrypted objects and key slots written under a
# generation other than 0 carry its number. A vault that was never rekeyed writes version 1 bytes only, so
# everything made before generations existed reads and is written exactly as before.
FORMAT_VERSION_GENERATIONS = 2
# Version 3 adds catalog segments: version records folded many to an object (ObjectType.CATALOG_SEGMENT), so
# listing versions/ stays one request at any number of versions. New vaults are made at version 3; a vault of
# an older version keeps its loose records (and is read and written by older releases as before).
FORMAT_VERSION_SEGMENTS = 3
NEW_VAULT_FORMAT = FORMAT_VERSION_SEGMENTS
# Version 4 adds write-only keys (`vault key add --write-only`): objects sealed to the vault's X25519 public key
# (header version 4), blobs sealed to it (FLAG_SEALED), locks sealed under the lock key that every key holds
# (header version 3), unnumbered version records, and key slots of version 3. A vault keeps its version until its
# first write-only key is added, which sets 4 before anything of version 4 is written (docs/format.md).
FORMAT_VERSION_WRITE_ONLY = 4
# Packs and encrypted objects carry their own header version: 1 (key generation 0), 2 (a later generation),
# 3 (a lock sealed under the lock key; objects only) or 4 (sealed to the public key of a generation).
HEADER_VERSION_MAX = 4
HEADER_LOCK_KEY = 3
HEADER_SEALED = 4
MAX_GENERATION = 2**32 - 1
# A vault with a retention (S3 Object Lock, `vault init --retention`) records it as the config's `retention_days`,
# which only a reader of version 3 or later knows: an older reader refuses the vault instead of writing unlocked
# objects into it or hiding locked ones behind delete markers (docs/format.md, "Config").
FORMAT_VERSION_RETENTION = FORMAT_VERSION_SEGMENTS
MAX_RETENTION_DAYS = 36500

# -- sizes ---------------------------------------------------------------------------------------------------
KEY_SIZE = 32  # AES-256-GCM keys, BLAKE3 keys, master key
NONCE_SIZE = 12  # AES-GCM's 96-bit nonce, random per encryption
TAG_SIZE = 16
ID_SIZE = 32  # blob ids (keyed BLAKE3) and pack ids (random)
PUBLIC_KEY_SIZE = 32  # X25519 public keys (the vault's, and the ephemeral one in front of each sealed unit)
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
LABEL_CACHE = b"vault/v1/cache"  # the local cache's root key (never stored; see vault/cache)
# Version 4 (write-only keys).
LABEL_X25519 = b"vault/v4/x25519"  # a generation's X25519 private key, from its master key
LABEL_LOCKS = b"vault/v4/locks"  # AEAD key for lock objects, from the data id key (every kind of key holds it)
LABEL_SEALED_BLOB = b"vault/v4/sealed/blob"  # a put's blob key, from its ephemeral X25519 exchange
LABEL_SEALED_PACK_HEADER = b"vault/v4/sealed/pack-header"
LABEL_SEALED_OBJECT = b"vault/v4/sealed/object"
LABEL_LOCAL_RECORD = b"vault/v4/local-record"  # a write-only key's local record (never stored; vault/repo)

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
    CATALOG_SEGMENT = 5  # many version records in one object of versions/ (format version 3)
    ALL = (1, 2, 3, 4, 5)


FLAG_ZSTD = 0x01  # the blob's plaintext was zstd-compressed before encryption
# Version 4: the blob is sealed to the vault's public key of its pack's generation (a write-only put's): its
# sealed bytes start with the put's ephemeral X25519 public key.
FLAG_SEALED = 0x02
KNOWN_FLAGS = FLAG_ZSTD | FLAG_SEALED


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
