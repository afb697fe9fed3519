"""Read back an offline W&B run file (``run-<id>.wandb``) to check what a run recorded.

wandb >= 0.2x writes offline runs as a LevelDB-style log of protobuf ``Record`` messages and no
longer ships a Python reader, so tests parse the log framing here and decode records with wandb's
own protobuf classes.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2

_BLOCK = 32 * 1024
_HEADER = 7  # crc32 (4) + length (2) + type (1)
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def read_records(path: Path, timeout_s: float = 30.0) -> list[wandb_internal_pb2.Record]:
    """The records of a run file, once it holds the run's ``exit`` record: wandb's service may still be
    writing the file after ``run.finish()`` returns (wandb 0.31 offline: about 1 test run in 10 read it
    without its history record). After ``timeout_s`` whatever is there is returned."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = _parse(path)
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.05)


def _parse(path: Path) -> list[wandb_internal_pb2.Record]:
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    records, pending, offset = [], b"", 7
    while offset + _HEADER <= len(data):
        room = _BLOCK - offset % _BLOCK
        if room < _HEADER:  # the rest of a block too small for a header is zero padding
            offset += room
            continue
        _, length, kind = struct.unpack("<IHB", data[offset : offset + _HEADER])
        payload = data[offset + _HEADER : offset + _HEADER + length]
        offset += _HEADER + length
        if kind == 0 and length == 0:
            break
        pending = payload if kind in (_FULL, _FIRST) else pending + payload
        if kind in (_FULL, _LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def offline_run_summary(path: Path) -> dict[str, Any]:
    """Run metadata, config and final summary of an offline run file."""
    info: dict[str, Any] = {"config": {}, "summary": {}}
    for record in read_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            info.update(group=record.run.run_group, job_type=record.run.job_type, tags=list(record.run.tags))
            for item in record.run.config.update:
                info["config"][item.key] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                info["config"][item.key] = json.loads(item.value_json)
        elif kind == "summary":
            for item in record.summary.update:
                info["summary"][item.key] = json.loads(item.value_json)
    return info


def offline_run_history(path: Path) -> list[dict[str, Any]]:
    """Every ``wandb.log`` call of an offline run file, one dict per step.

    Media (images, tables) are logged as their JSON stubs, flattened into one item per field with a
    ``nested_key`` path (``["plots/x", "path"]``): they are nested back into ``{"plots/x": {"path": ...}}``.
    """
    rows: list[dict[str, Any]] = []
    for record in read_records(path):
        if record.WhichOneof("record_type") == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                keys = [item.key] if item.key else list(item.nested_key)
                node = row
                for key in keys[:-1]:
                    node = node.setdefault(key, {})
                node[keys[-1]] = json.loads(item.value_json)
            rows.append(row)
    return rows
