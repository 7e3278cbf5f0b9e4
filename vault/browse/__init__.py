"""Browsing stored versions without restoring them: `vault diff` (diff.py) and `vault find` (find.py), on the
tree reading and walking of trees.py. (`vault mount` is vault.mount; tar in and out are vault.archive.tar and
vault.restore.tar; `vault copy` is vault.ops.copy.)"""
