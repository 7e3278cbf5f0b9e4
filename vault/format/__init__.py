"""Every byte layout and constant of the vault format, one family per module; docs/format.md describes the bytes.

Nothing outside this package builds stored bytes or parses stored documents. Readers accept
``FORMAT_VERSION_MIN..FORMAT_VERSION_MAX``; writers emit ``FORMAT_VERSION`` (restic's Min/Max/Stable). Every
parser here treats its input as hostile: lengths are checked before use, counts are bounded by the bytes
actually present, and any mismatch raises :class:`IntegrityError` (never IndexError, struct.error or a huge
allocation). A version newer than we know raises :class:`UnsupportedVersionError`.

The modules, one family each:

- ``constants``: versions, sizes, bounds, HKDF labels, magics, AAD prefixes, type bytes, ``check_version``;
- ``entries``: the blob entry that pack headers and index objects share;
- ``packs``, ``objects`` (standalone encrypted objects) and ``index``: binary layouts;
- ``documents``: canonical JSON, ids in hex, bytes in base64;
- ``trees``, ``records`` (version records), ``config`` and ``locks``: the JSON documents;
- ``keyring`` (what version 2 and 3 key slots wrap) and ``slots`` (key slots and their KDF parameters);
- ``sealed``: how units sealed to the vault's public key (write-only keys, format version 4) derive their key.

This package re-exports their public names, so callers write ``from vault import format as fmt`` and ``fmt.X``.
The classes the rest of vault works with (Keyring, KeySlot, VersionRecord, VaultConfig, LockInfo) stay with
their owners, which encode them through the functions here and build them from the ``*Fields`` tuples decoded
here: this package never imports vault.repo or vault.crypto.
"""

from __future__ import annotations

from vault.format.config import MAX_CONFIG_SIZE as MAX_CONFIG_SIZE
from vault.format.config import ConfigFields as ConfigFields
from vault.format.config import decode_config as decode_config
from vault.format.config import encode_config as encode_config
from vault.format.constants import AAD_BLOB as AAD_BLOB
from vault.format.constants import AAD_KEY_SLOT as AAD_KEY_SLOT
from vault.format.constants import AAD_OBJECT as AAD_OBJECT
from vault.format.constants import AAD_PACK_HEADER as AAD_PACK_HEADER
from vault.format.constants import AEAD_OVERHEAD as AEAD_OVERHEAD
from vault.format.constants import CHUNK_AVG as CHUNK_AVG
from vault.format.constants import CHUNK_MAX as CHUNK_MAX
from vault.format.constants import CHUNK_MIN as CHUNK_MIN
from vault.format.constants import FLAG_SEALED as FLAG_SEALED
from vault.format.constants import FLAG_ZSTD as FLAG_ZSTD
from vault.format.constants import FORMAT_VERSION as FORMAT_VERSION
from vault.format.constants import FORMAT_VERSION_GENERATIONS as FORMAT_VERSION_GENERATIONS
from vault.format.constants import FORMAT_VERSION_MAX as FORMAT_VERSION_MAX
from vault.format.constants import FORMAT_VERSION_MIN as FORMAT_VERSION_MIN
from vault.format.constants import FORMAT_VERSION_RETENTION as FORMAT_VERSION_RETENTION
from vault.format.constants import FORMAT_VERSION_SEGMENTS as FORMAT_VERSION_SEGMENTS
from vault.format.constants import FORMAT_VERSION_WRITE_ONLY as FORMAT_VERSION_WRITE_ONLY
from vault.format.constants import HEADER_LOCK_KEY as HEADER_LOCK_KEY
from vault.format.constants import HEADER_SEALED as HEADER_SEALED
from vault.format.constants import HEADER_VERSION_MAX as HEADER_VERSION_MAX
from vault.format.constants import ID_SIZE as ID_SIZE
from vault.format.constants import KEY_SIZE as KEY_SIZE
from vault.format.constants import KNOWN_FLAGS as KNOWN_FLAGS
from vault.format.constants import LABEL_CACHE as LABEL_CACHE
from vault.format.constants import LABEL_CHUNKER as LABEL_CHUNKER
from vault.format.constants import LABEL_DATA as LABEL_DATA
from vault.format.constants import LABEL_ID as LABEL_ID
from vault.format.constants import LABEL_LOCAL_RECORD as LABEL_LOCAL_RECORD
from vault.format.constants import LABEL_LOCKS as LABEL_LOCKS
from vault.format.constants import LABEL_META as LABEL_META
from vault.format.constants import LABEL_SEALED_BLOB as LABEL_SEALED_BLOB
from vault.format.constants import LABEL_SEALED_OBJECT as LABEL_SEALED_OBJECT
from vault.format.constants import LABEL_SEALED_PACK_HEADER as LABEL_SEALED_PACK_HEADER
from vault.format.constants import LABEL_TREE_ID as LABEL_TREE_ID
from vault.format.constants import LABEL_X25519 as LABEL_X25519
from vault.format.constants import MAX_BLOB_RAW as MAX_BLOB_RAW
from vault.format.constants import MAX_GENERATION as MAX_GENERATION
from vault.format.constants import MAX_METADATA_RAW as MAX_METADATA_RAW
from vault.format.constants import MAX_PACK_ENTRIES as MAX_PACK_ENTRIES
from vault.format.constants import MAX_PACK_SIZE as MAX_PACK_SIZE
from vault.format.constants import MAX_RETENTION_DAYS as MAX_RETENTION_DAYS
from vault.format.constants import NEW_VAULT_FORMAT as NEW_VAULT_FORMAT
from vault.format.constants import NONCE_SIZE as NONCE_SIZE
from vault.format.constants import OBJECT_MAGIC as OBJECT_MAGIC
from vault.format.constants import PACK_MAGIC as PACK_MAGIC
from vault.format.constants import PACK_TARGET_SIZE as PACK_TARGET_SIZE
from vault.format.constants import PUBLIC_KEY_SIZE as PUBLIC_KEY_SIZE
from vault.format.constants import SALT_SIZE as SALT_SIZE
from vault.format.constants import TAG_SIZE as TAG_SIZE
from vault.format.constants import VAULT_ID_SIZE as VAULT_ID_SIZE
from vault.format.constants import BlobType as BlobType
from vault.format.constants import ObjectType as ObjectType
from vault.format.constants import check_version as check_version
from vault.format.documents import b64 as b64
from vault.format.documents import decode_json_object as decode_json_object
from vault.format.documents import encode_json as encode_json
from vault.format.documents import id_from_hex as id_from_hex
from vault.format.documents import id_hex as id_hex
from vault.format.documents import unb64 as unb64
from vault.format.entries import ENTRY_SIZE as ENTRY_SIZE
from vault.format.entries import BlobEntry as BlobEntry
from vault.format.entries import decode_entries as decode_entries
from vault.format.entries import encode_entries as encode_entries
from vault.format.index import IndexedPack as IndexedPack
from vault.format.index import decode_index as decode_index
from vault.format.index import encode_index as encode_index
from vault.format.keyring import FLAG_REENCRYPT_PENDING as FLAG_REENCRYPT_PENDING
from vault.format.keyring import KEYRING_MAGIC as KEYRING_MAGIC
from vault.format.keyring import MAX_GENERATIONS_HELD as MAX_GENERATIONS_HELD
from vault.format.keyring import MAX_KEYRING_SIZE as MAX_KEYRING_SIZE
from vault.format.keyring import WRITE_ONLY_KEYRING_SIZE as WRITE_ONLY_KEYRING_SIZE
from vault.format.keyring import KeyringFields as KeyringFields
from vault.format.keyring import WriteOnlyFields as WriteOnlyFields
from vault.format.keyring import decode_keyring as decode_keyring
from vault.format.keyring import decode_write_only_keyring as decode_write_only_keyring
from vault.format.keyring import encode_keyring as encode_keyring
from vault.format.keyring import encode_write_only_keyring as encode_write_only_keyring
from vault.format.locks import LockFields as LockFields
from vault.format.locks import decode_lock as decode_lock
from vault.format.locks import encode_lock as encode_lock
from vault.format.objects import MAX_LOCK_RAW as MAX_LOCK_RAW
from vault.format.objects import MAX_OBJECT_RAW as MAX_OBJECT_RAW
from vault.format.objects import MAX_RECORD_RAW as MAX_RECORD_RAW
from vault.format.objects import OBJECT_PREFIX_MAX_SIZE as OBJECT_PREFIX_MAX_SIZE
from vault.format.objects import OBJECT_PREFIX_SEALED_SIZE as OBJECT_PREFIX_SEALED_SIZE
from vault.format.objects import OBJECT_PREFIX_SIZE as OBJECT_PREFIX_SIZE
from vault.format.objects import SEALED_TYPES as SEALED_TYPES
from vault.format.objects import ObjectHeader as ObjectHeader
from vault.format.objects import lock_prefix as lock_prefix
from vault.format.objects import object_aad as object_aad
from vault.format.objects import object_prefix as object_prefix
from vault.format.objects import object_type as object_type
from vault.format.objects import parse_object_header as parse_object_header
from vault.format.objects import parse_object_prefix as parse_object_prefix
from vault.format.objects import sealed_prefix as sealed_prefix
from vault.format.packs import MAX_PACK_HEADER as MAX_PACK_HEADER
from vault.format.packs import PACK_PREAMBLE as PACK_PREAMBLE
from vault.format.packs import PACK_PREAMBLE_MAX_SIZE as PACK_PREAMBLE_MAX_SIZE
from vault.format.packs import PACK_PREAMBLE_SIZE as PACK_PREAMBLE_SIZE
from vault.format.packs import PACK_TRAILER_SIZE as PACK_TRAILER_SIZE
from vault.format.packs import blob_aad as blob_aad
from vault.format.packs import check_pack_entries as check_pack_entries
from vault.format.packs import decode_pack_header as decode_pack_header
from vault.format.packs import pack_header_aad as pack_header_aad
from vault.format.packs import pack_is_sealed as pack_is_sealed
from vault.format.packs import pack_preamble as pack_preamble
from vault.format.packs import pack_trailer as pack_trailer
from vault.format.packs import parse_pack_preamble as parse_pack_preamble
from vault.format.packs import parse_pack_trailer as parse_pack_trailer
from vault.format.records import MAX_RECORD_SIZE as MAX_RECORD_SIZE
from vault.format.records import MAX_SEGMENT_SIZE as MAX_SEGMENT_SIZE
from vault.format.records import RECORD_VERSION as RECORD_VERSION
from vault.format.records import RecordFields as RecordFields
from vault.format.records import RecordOrigin as RecordOrigin
from vault.format.records import decode_record as decode_record
from vault.format.records import decode_segment as decode_segment
from vault.format.records import encode_record as encode_record
from vault.format.records import encode_segment as encode_segment
from vault.format.records import record_doc as record_doc
from vault.format.sealed import SEALED_OVERHEAD as SEALED_OVERHEAD
from vault.format.sealed import sealed_key_info as sealed_key_info
from vault.format.sealed import sealed_key_salt as sealed_key_salt
from vault.format.sealed import split_sealed as split_sealed
from vault.format.slots import HARD_MIN_MEMORY_KIB as HARD_MIN_MEMORY_KIB
from vault.format.slots import MAX_MEMORY_KIB as MAX_MEMORY_KIB
from vault.format.slots import MAX_PARALLELISM as MAX_PARALLELISM
from vault.format.slots import MAX_SLOT_SIZE as MAX_SLOT_SIZE
from vault.format.slots import MAX_TIME_COST as MAX_TIME_COST
from vault.format.slots import POLICIES as POLICIES
from vault.format.slots import POLICY_DEFAULT as POLICY_DEFAULT
from vault.format.slots import POLICY_EXPLICIT as POLICY_EXPLICIT
from vault.format.slots import POLICY_RECOVERY as POLICY_RECOVERY
from vault.format.slots import SLOT_VERSION as SLOT_VERSION
from vault.format.slots import SLOT_VERSION_KEYRING as SLOT_VERSION_KEYRING
from vault.format.slots import SLOT_VERSION_WRITE_ONLY as SLOT_VERSION_WRITE_ONLY
from vault.format.slots import KdfParams as KdfParams
from vault.format.slots import SlotFields as SlotFields
from vault.format.slots import decode_kdf_params as decode_kdf_params
from vault.format.slots import decode_slot as decode_slot
from vault.format.slots import decode_slot_details as decode_slot_details
from vault.format.slots import decode_slot_generation as decode_slot_generation
from vault.format.slots import encode_slot as encode_slot
from vault.format.slots import encode_slot_details as encode_slot_details
from vault.format.slots import slot_info_aad as slot_info_aad
from vault.format.slots import slot_wrap_aad as slot_wrap_aad
from vault.format.trees import MAX_NAME_BYTES as MAX_NAME_BYTES
from vault.format.trees import NODE_TYPES as NODE_TYPES
from vault.format.trees import TREE_VERSION as TREE_VERSION
from vault.format.trees import Node as Node
from vault.format.trees import decode_tree as decode_tree
from vault.format.trees import encode_tree as encode_tree
from vault.format.trees import valid_segment as valid_segment
