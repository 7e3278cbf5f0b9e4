"""What a put reports for each item it stored (the CLI prints it, `--json` gives its :meth:`PutResult.to_json`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PutResult:
    name: str
    version: int
    type: str
    files: int
    bytes_read: int
    bytes_added: int
    skipped: list[str] = field(default_factory=list)
    size: int = 0  # original bytes of the version (unchanged files count though they were not read)
    # False for a write-only key's version: its number is given by readers (``version`` is then 0; null in JSON)
    numbered: bool = True

    @property
    def committed(self) -> bool:
        """True when a version was stored (a single file that could not be read stores none)."""
        return self.version > 0 or not self.numbered

    def to_json(self) -> dict[str, object]:
        return {
            "size": self.size,
            "name": self.name,
            "version": self.version if self.numbered else None,
            "type": self.type,
            "files": self.files,
            "bytes_read": self.bytes_read,
            "bytes_added": self.bytes_added,
            "skipped": self.skipped,
        }
