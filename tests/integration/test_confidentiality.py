"""What the storage may reveal (spec/cli.md): no item name, file name, file content or password.

Distinctive names, contents and passwords go in through every path (file, directory tree, standard input,
several versions, key add, passwd); then every byte of every file under the vault directory is searched for
each of them (raw, case variants, base64).
"""

from __future__ import annotations

import os
from pathlib import Path

from helpers import PASSWORD, find_in_files, secret_variants, vault_files, write_file

ITEM_NAMES = ["secret-name-XYZ.txt", "project-dir-QWE", "stream-item-FGH", "renamed-item-JKL"]
FILE_NAMES = ["inner-file-ASD.bin", "subdir-name-RTY", "deep-file-UIO.md", "link-name-VBN", "link-target-NMK"]
MARKERS = ["MARKER-CONTENT-123", "MARKER-RAW-456", "MARKER-STREAM-789", "MARKER-V2-246"]
PASSWORDS = [PASSWORD, "added-Key-Password-Tz81", "changed-Password-Hy55"]


def test_storage_reveals_no_names_contents_or_passwords(vault, tmp_path: Path) -> None:
    src = tmp_path / "src"
    f = write_file(src / ITEM_NAMES[0], (MARKERS[0] + "\n").encode() * 20_000)
    tree = src / ITEM_NAMES[1]
    write_file(tree / FILE_NAMES[0], MARKERS[1].encode() * 3)  # tiny and incompressible-ish
    write_file(tree / FILE_NAMES[1] / FILE_NAMES[2], (MARKERS[0] + " ").encode() * 5000)
    os.symlink(FILE_NAMES[4], tree / FILE_NAMES[3])  # the link target is a name too

    vault("put", str(f), str(tree), check=0)
    vault("put", str(f), "--compression", "0", "--name", f"folder-name-PLM/{ITEM_NAMES[3]}", check=0)
    vault("put", "-", "--name", ITEM_NAMES[2], input=(MARKERS[2] + "\n").encode() * 1000, check=0)
    vault("put", "-", "--name", ITEM_NAMES[2], "--compression", "0", input=MARKERS[3].encode(), check=0)
    vault("key", "add", env={"VAULT_NEW_PASSWORD": PASSWORDS[1]}, check=0)
    vault("passwd", env={"VAULT_NEW_PASSWORD": PASSWORDS[2]}, check=0)
    assert vault("get", ITEM_NAMES[2], "-o", "-", env={"VAULT_PASSWORD": PASSWORDS[1]}, check=0).out == \
        MARKERS[3].encode()

    files = vault_files(vault.vault_path)
    assert len(files) >= 8  # config, 2 keys, packs, index, 5 version records
    needles: list[bytes] = []
    for s in [*ITEM_NAMES, *FILE_NAMES, *MARKERS, "folder-name-PLM"]:
        needles += secret_variants(s)
    for pw in PASSWORDS:
        needles += secret_variants(pw)
    assert find_in_files(files, needles) == []
    # The search itself works: the plaintext config's own keys are found by it.
    assert find_in_files(files, secret_variants("format_version"))
    # Not even in the names of the objects.
    paths = "\n".join(str(p.relative_to(vault.vault_path)) for p in files).encode()
    assert [n for n in needles if n in paths] == []
