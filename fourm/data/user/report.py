"""LoadReport: what a user-data loader loaded, what it skipped and why (with example paths)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

# Reasons a sample is skipped (the keys of LoadReport.skipped).
MISSING_FILE = "missing file"
CORRUPT_FILE = "corrupt file"  # the file cannot be decoded
BAD_FORMAT = "bad format"  # decodes, but has the wrong layout, dtype or values
BAD_ANNOTATION = "bad annotation"  # caption / bboxes / palette / metadata value missing or malformed
SIZE_MISMATCH = "size mismatch"  # the modalities of a sample disagree in aspect ratio
BAD_METADATA_LINE = "bad metadata line"  # a metadata.jsonl line that is not an entry
DUPLICATE = "duplicate entry"


class SkipSample(Exception):
    """Raised inside a loader to skip the current sample; caught and counted in the LoadReport."""

    def __init__(self, reason: str, path: object, detail: str = "") -> None:
        super().__init__(f"{reason}: {path}" + (f" ({detail})" if detail else ""))
        self.reason, self.path, self.detail = reason, str(path), detail


@dataclass
class LoadReport:
    """Counts of loaded and skipped samples (by reason), a few example paths per reason, and notes."""

    source: str = ""
    loaded: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> a few "path (detail)"
    notes: Counter = field(default_factory=Counter)  # non-fatal events, e.g. "box outside the crop dropped"
    max_examples: int = 3

    def skip(self, reason: str, path: object, detail: str = "") -> None:
        """Count one skipped sample."""
        self.skipped[reason] += 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < self.max_examples:
            examples.append(f"{path}" + (f" ({detail})" if detail else ""))

    def skip_error(self, error: SkipSample) -> None:
        self.skip(error.reason, error.path, error.detail)

    def note(self, what: str, count: int = 1) -> None:
        """Count a non-fatal event (the sample was still loaded)."""
        self.notes[what] += count

    @property
    def num_skipped(self) -> int:
        return sum(self.skipped.values())

    def first_problem(self) -> str:
        """The first example of the most common skip reason, e.g. ``bad metadata line: DIR/metadata.jsonl:1
        (invalid JSON: ...)``, for a one-line error; '' when nothing was skipped."""
        for reason, _ in self.skipped.most_common():
            examples = self.examples.get(reason)
            if examples:
                return f"{reason}: {examples[0]}"
        return ""

    def summary(self) -> str:
        """A few human-readable lines for the end of an import."""
        head = f"loaded {self.loaded} samples" + (f" from {self.source}" if self.source else "")
        lines = [f"{head}, skipped {self.num_skipped}"]
        for reason, count in self.skipped.most_common():
            lines.append(f"  skipped {count} x {reason}, e.g.:")
            lines.extend(f"    {ex}" for ex in self.examples.get(reason, []))
        for what, count in self.notes.most_common():
            lines.append(f"  note: {count} x {what}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "loaded": self.loaded,
            "skipped": dict(self.skipped),
            "examples": {k: list(v) for k, v in self.examples.items()},
            "notes": dict(self.notes),
        }
