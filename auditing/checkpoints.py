"""Where signed checkpoints are kept: sinks outside the database, named by URL in
settings.AUDIT_CHECKPOINT_SINKS, and the database's own append-only copy.

A sink only has to keep what it is given and hand it back. Nothing read from a sink is
trusted for where it came from: every checkpoint is checked by its signature
(auditing/chain.py), so a sink's owner can hide a checkpoint but never forge one. A new
kind of sink (object storage with a retention lock, say) implements ``CheckpointSink``
and is added to ``sink_for``.
"""

import datetime as dt
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from auditing import models
from auditing.chain import Checkpoint, CheckpointSource, CheckpointUnreadable, SignedCheckpoint

FILE_PATTERN = re.compile(r"checkpoint-\d+-\d{8}T\d{12}Z\.json")


class CheckpointSink(Protocol):
    location: str

    def write(self, signed: SignedCheckpoint) -> None:
        """Keep the checkpoint, or raise OSError (or the sink's own error)."""

    def read(self) -> Iterator[CheckpointSource]:
        """Every checkpoint kept, readable or not."""


class DirectorySink:
    """One JSON file per checkpoint, never overwritten. In compose the directory is a
    volume of its own, which the database's owner does not reach; an auditor copies or
    mirrors it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)

    def file_name(self, signed: SignedCheckpoint) -> str:
        checkpoint = signed.checkpoint
        signed_at = checkpoint.signed_at.astimezone(dt.UTC)
        return f"checkpoint-{checkpoint.sequence:015d}-{signed_at:%Y%m%dT%H%M%S%f}Z.json"

    def write(self, signed: SignedCheckpoint) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.path / self.file_name(signed)
        partial = target.with_suffix(".partial")
        # Written whole and synced before it gets its name: a crash leaves a .partial file,
        # never a truncated checkpoint. "x" refuses to overwrite an existing file.
        with open(partial, "x", encoding="utf-8") as handle:
            handle.write(signed.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.link(partial, target)  # fails if the name exists: a checkpoint is never replaced
        partial.unlink()
        directory = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def read(self) -> Iterator[CheckpointSource]:
        if not self.path.is_dir():
            return
        for path in sorted(self.path.iterdir()):
            if path.suffix != ".json":
                continue
            location = str(path)
            try:
                signed = SignedCheckpoint.from_json(path.read_bytes())
            except CheckpointUnreadable as error:
                yield CheckpointSource(location=location, signed=None, problem=str(error))
            except OSError as error:
                yield CheckpointSource(location=location, signed=None, problem=error.strerror)
            else:
                yield CheckpointSource(location=location, signed=signed)


class DatabaseCopy:
    """The append-only table ``auditing_checkpoint``: shown in the admin, and read like any
    sink. Deleting its rows hides nothing the files keep."""

    location = "database"

    def write(self, signed: SignedCheckpoint) -> models.Checkpoint:
        checkpoint = signed.checkpoint
        return models.Checkpoint.objects.create(
            sequence=checkpoint.sequence,
            head_hash=checkpoint.head_hash,
            entry_count=checkpoint.entry_count,
            signed_at=checkpoint.signed_at,
            public_key=signed.public_key,
            signature=signed.signature,
        )

    def read(self) -> Iterator[CheckpointSource]:
        for row in models.Checkpoint.objects.order_by("sequence").iterator(chunk_size=2000):
            yield CheckpointSource(
                location=f"database checkpoint #{row.pk}",
                signed=SignedCheckpoint(
                    checkpoint=Checkpoint(
                        sequence=row.sequence,
                        head_hash=row.head_hash,
                        entry_count=row.entry_count,
                        signed_at=row.signed_at,
                    ),
                    public_key=row.public_key,
                    signature=row.signature,
                ),
            )


def sink_for(url: str) -> CheckpointSink:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return DirectorySink(Path(unquote(parsed.path)))
    raise ImproperlyConfigured(f"AUDIT_CHECKPOINT_SINKS: no sink for {url!r}; use file:///dir")


def configured_sinks() -> list[CheckpointSink]:
    return [sink_for(url) for url in settings.AUDIT_CHECKPOINT_SINKS]


def checkpoint_sources() -> Iterator[CheckpointSource]:
    """Every checkpoint every sink holds, the database's copy included."""
    for sink in [*configured_sinks(), DatabaseCopy()]:
        yield from sink.read()
