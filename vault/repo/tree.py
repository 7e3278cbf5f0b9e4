"""Trees as the rest of vault takes them: the node type, encoding and decoding, from vault.format.trees.

A tree is the encrypted description of an item version's files, directories and links; its layout, and the
checks on the untrusted names it holds, live in vault.format.trees. The restore code checks names again
against its destination (never trust one layer).
"""

from __future__ import annotations

from vault.format.trees import MAX_NAME_BYTES, NODE_TYPES, TREE_VERSION, Node, decode_tree, encode_tree, valid_segment

__all__ = ["MAX_NAME_BYTES", "NODE_TYPES", "TREE_VERSION", "Node", "decode_tree", "encode_tree", "valid_segment"]
