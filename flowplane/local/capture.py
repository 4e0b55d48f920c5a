"""Every change the embedded AWS makes, as a journal record, before the request is answered.

moto keeps its state in memory. Rather than copying all of it to disk now and
then (a cost that grows with history), the plane wraps the few backend methods
that change what it must keep and appends one record per change:

- S3: an object's body goes to `objects/<sha256 of the body>` (written once,
  shared by equal bodies) and the key's in-memory buffer is swapped for
  `DiskBody`, so memory does not grow with artifacts either; the record holds
  the key, file, ETag, size and metadata.
- DynamoDB: the whole item after each put, update or delete (or its absence),
  read once the outermost call returns, so a transaction that rolled back
  records what is really there.
- CloudWatch Logs: the events of each PutLogEvents.
- Step Functions state machines (with tags and aliases) and EventBridge rules
  (with targets): the few that changed, after each change. Executions are
  recorded by the plane as its watcher sees their statuses (persist.py).

Records are whole states keyed by identity (logs excepted, which append), so
applying a journal twice or compacting it mid-way changes nothing.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import threading
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Optional, Union

from .journal import Journal
from .moto_patches import Undo, _set_attributes

log = logging.getLogger("flowplane.local.capture")

Record = dict[str, Any]


class DiskBody:
    """A file-like stand-in for a moto S3 key's value buffer: the body stays on disk.

    moto reads a key's value with seek/read on `_value_buffer`; this opens the
    file for each read, so no descriptor is held per object. A write (moto never
    rewrites a stored key's body, but may) moves the body into memory.
    """

    def __init__(self, path: Union[str, Path], size: int) -> None:
        # A str: restore makes one per stored object, and a Path each costs ~10 us to build.
        self.path = os.fspath(path)
        self.size = size
        self._pos = 0
        self._memory: Optional[io.BytesIO] = None
        self.closed = False

    def seek(self, offset: int, whence: int = 0) -> int:
        if self._memory is not None:
            return self._memory.seek(offset, whence)
        base = {0: 0, 1: self._pos, 2: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._memory.tell() if self._memory is not None else self._pos

    def read(self, size: int = -1) -> bytes:
        if self._memory is not None:
            return self._memory.read(size)
        with open(self.path, "rb") as f:
            f.seek(self._pos)
            data = f.read() if size is None or size < 0 else f.read(size)
        self._pos += len(data)
        return data

    def _in_memory(self) -> io.BytesIO:
        if self._memory is None:
            self.seek(0)
            self._memory = io.BytesIO(self.read())
            self._memory.seek(self._pos)
        return self._memory

    def write(self, data: bytes) -> int:
        return self._in_memory().write(data)

    def truncate(self, size: Optional[int] = None) -> int:
        return self._in_memory().truncate(size)

    def close(self) -> None:
        self.closed = True


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


class Capture:
    """Installs the hooks; each change becomes a record in `journal`."""

    def __init__(self, journal: Journal, objects_dir: Path, skip_rules: Callable[[], set[str]],
                 objects_lock: Optional[threading.Lock] = None) -> None:
        self.journal = journal
        self._objects_lock = objects_lock or threading.Lock()
        self.objects = Path(objects_dir)
        self.objects.mkdir(parents=True, exist_ok=True)
        self._skip_rules = skip_rules
        self._local = threading.local()
        self._machines: dict[str, Record] = {}
        self._rules: dict[str, Record] = {}
        self._zoned: dict[str, Record] = {}
        self._shapes_lock = threading.Lock()

    # --- install -------------------------------------------------------------------------

    def install(self, machines: dict[str, Record], rules: dict[str, Record],
                zoned: Optional[dict[str, Record]] = None) -> Undo:
        """Hook moto; `machines`, `rules` and `zoned` (Scheduler schedules) are what the journal
        already holds (by identity)."""
        from moto.dynamodb.models import DynamoDBBackend
        from moto.events.models import EventsBackend
        from moto.logs.models import LogStream
        from moto.s3.models import FakeKey, S3Backend
        from moto.scheduler.models import EventBridgeSchedulerBackend
        from moto.stepfunctions.parser.models import StepFunctionsParserBackend

        self._machines = dict(machines)
        self._rules = dict(rules)
        self._zoned = dict(zoned or {})
        undo: list[Undo] = []
        undo.append(self._wrap(S3Backend, ("put_object",), after=self._s3_put))
        undo.append(self._wrap(S3Backend, ("delete_object",), after=self._s3_delete))
        undo.append(self._wrap(FakeKey, ("set_metadata",), after=self._s3_metadata))
        undo.append(self._wrap(DynamoDBBackend, ("put_item", "update_item", "delete_item", "transact_write_items"),
                               before=self._ddb_touch, outermost=self._ddb_flush))
        undo.append(self._wrap(LogStream, ("put_log_events",), after=self._logs_put))
        undo.append(self._wrap(EventsBackend, ("put_rule", "delete_rule", "put_targets", "remove_targets",
                                               "enable_rule", "disable_rule"), after=self._rules_changed))
        undo.append(self._wrap(EventBridgeSchedulerBackend, ("create_schedule", "update_schedule", "delete_schedule"),
                               after=self._zoned_changed))
        undo.append(self._wrap(StepFunctionsParserBackend, (
            "create_state_machine", "update_state_machine", "delete_state_machine", "create_state_machine_alias",
            "update_state_machine_alias", "delete_state_machine_alias", "tag_resource", "untag_resource",
        ), after=self._machines_changed))

        def uninstall() -> None:
            for u in reversed(undo):
                u()

        return uninstall

    def _wrap(
        self,
        cls: type,
        names: tuple[str, ...],
        before: Optional[Callable[..., None]] = None,
        after: Optional[Callable[..., None]] = None,
        outermost: Optional[Callable[[], None]] = None,
    ) -> Undo:
        local = self._local
        replacements = {}
        for name in names:
            original = getattr(cls, name)

            def wrapper(obj: Any, *args: Any, __original: Any = original, __name: str = name, **kwargs: Any) -> Any:
                depth = getattr(local, "depth", 0)
                local.depth = depth + 1
                try:
                    if before is not None:
                        before(obj, __name, args, kwargs)
                    result = __original(obj, *args, **kwargs)
                    if after is not None:
                        after(obj, result, args, kwargs)
                    return result
                finally:
                    local.depth = depth
                    if depth == 0 and outermost is not None:
                        outermost()

            wrapper.__name__ = name
            replacements[name] = wrapper
        return _set_attributes(cls, replacements)

    # --- S3 ------------------------------------------------------------------------------

    def _s3_put(self, backend: Any, key: Any, args: tuple, kwargs: dict) -> None:
        bucket = args[0] if args else kwargs["bucket_name"]
        key.etag  # computed (and kept) from the buffer now, before the body moves to disk
        digest = hashlib.sha256()
        incoming = self.objects / f".incoming-{uuid.uuid4().hex}"
        with key.lock:
            buffer = key._value_buffer
            buffer.seek(0)
            size = 0
            with open(incoming, "wb") as f:
                for chunk in iter(lambda: buffer.read(1 << 20), b""):
                    digest.update(chunk)
                    f.write(chunk)
                    size += len(chunk)
            name = digest.hexdigest()
            path = self.objects / name
            with self._objects_lock:
                if path.exists():
                    incoming.unlink()
                    os.utime(path)  # named again now: a compaction under way must keep it
                else:
                    os.replace(incoming, path)
            key._value_buffer = DiskBody(path, size)
            buffer.close()
        key._fp_file = name
        key._fp_bucket = bucket
        self.journal.append(s3_record(bucket, key, name))

    def _s3_metadata(self, key: Any, result: Any, args: tuple, kwargs: dict) -> None:
        if getattr(key, "_fp_file", None):
            self.journal.append(s3_record(key._fp_bucket, key, key._fp_file))

    def _s3_delete(self, backend: Any, result: Any, args: tuple, kwargs: dict) -> None:
        bucket_name = args[0] if args else kwargs["bucket_name"]
        key_name = args[1] if len(args) > 1 else kwargs["key_name"]
        bucket = backend.buckets.get(bucket_name)
        if bucket is not None and bucket.keys.get(key_name) is None:
            self.journal.append({"t": "s3", "b": bucket_name, "k": key_name, "del": True})

    # --- DynamoDB ------------------------------------------------------------------------

    def _ddb_touch(self, backend: Any, name: str, args: tuple, kwargs: dict) -> None:
        touched = getattr(self._local, "touched", None)
        if touched is None:
            touched = self._local.touched = []
        if name == "transact_write_items":
            return  # its puts, updates and deletes come through the other three
        table_name = args[0] if args else kwargs["table_name"]
        if name == "put_item":
            attrs = args[1] if len(args) > 1 else kwargs["item_attrs"]
            try:
                table = backend.get_table(table_name)
            except Exception:
                return
            key = {a: attrs[a] for a in (table.hash_key_attr, table.range_key_attr) if a and a in attrs}
        else:
            key = args[1] if len(args) > 1 else kwargs["key"]
        touched.append((backend, table_name, key))

    def _ddb_flush(self) -> None:
        touched = getattr(self._local, "touched", None)
        self._local.touched = None
        if not touched:
            return
        records, seen = [], set()
        for backend, table_name, key in touched:
            identity = ddb_identity(table_name, key)
            if identity in seen:
                continue
            seen.add(identity)
            item = current_item(backend, table_name, key)
            records.append({"t": "ddb", "tb": table_name, "key": key, "item": item})
        self.journal.append(*records)

    # --- logs ----------------------------------------------------------------------------

    def _logs_put(self, stream: Any, result: Any, args: tuple, kwargs: dict) -> None:
        events = args[0] if args else kwargs["log_events"]
        if events:
            self.journal.append({
                "t": "log", "g": stream.log_group.name, "s": stream.log_stream_name,
                "e": [[e["timestamp"], e["message"]] for e in events],
            })

    # --- rules and state machines: few, so compared whole after each change ---------------

    def _rules_changed(self, backend: Any, result: Any, args: tuple, kwargs: dict) -> None:
        with self._shapes_lock:
            now = rule_records(backend, self._skip_rules())
            self.journal.append(*_diff(self._rules, now, "rule"))
            self._rules = now

    def _zoned_changed(self, backend: Any, result: Any, args: tuple, kwargs: dict) -> None:
        with self._shapes_lock:
            now = zoned_records(backend)
            self.journal.append(*_diff(self._zoned, now, "zs"))
            self._zoned = now

    def _machines_changed(self, backend: Any, result: Any, args: tuple, kwargs: dict) -> None:
        with self._shapes_lock:
            now = machine_records(backend)
            self.journal.append(*_diff(self._machines, now, "sm"))
            self._machines = now


def _diff(before: dict[str, Record], after: dict[str, Record], kind: str) -> list[Record]:
    out = [r for identity, r in after.items() if before.get(identity) != r]
    out.extend({"t": kind, "id": identity, "del": True} for identity in before if identity not in after)
    return out


def s3_record(bucket: str, key: Any, file: str) -> Record:
    return {
        "t": "s3", "b": bucket, "k": key.name, "f": file, "e": key.etag.strip('"'), "n": key.contentsize,
        "lm": _iso(key.last_modified), "m": dict(key.metadata),
    }


def ddb_identity(table: str, key: dict[str, Any]) -> str:
    import json

    return table + "\n" + json.dumps(key, sort_keys=True)


def current_item(backend: Any, table_name: str, key: dict[str, Any]) -> Optional[dict[str, Any]]:
    from moto.dynamodb.models.dynamo_type import DynamoType

    try:
        table = backend.get_table(table_name)
    except Exception:
        return None
    hash_value = DynamoType(key[table.hash_key_attr]) if table.hash_key_attr in key else None
    range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr and table.range_key_attr in key else None
    if hash_value is None:
        return None
    try:
        item = table.get_item(hash_value, range_value)
    except Exception:
        return None
    return None if item is None else item.to_json()["Attributes"]


def rule_records(backend: Any, skip: set[str]) -> dict[str, Record]:
    import json

    out = {}
    for bus_name, bus in backend.event_buses.items():
        for rule in list(bus.rules.values()):
            if rule.name in skip:
                continue
            identity = f"{bus_name}/{rule.name}"
            record: Record = {"t": "rule", "id": identity, "bus": bus_name, "Name": rule.name, "State": rule.state,
                              "Targets": [dict(t) for t in rule.targets]}
            if rule.scheduled_expression:
                record["ScheduleExpression"] = rule.scheduled_expression
            pattern = rule.event_pattern.dump() if rule.event_pattern is not None else None
            if pattern:
                record["EventPattern"] = pattern if isinstance(pattern, str) else json.dumps(pattern)
            if rule.description:
                record["Description"] = rule.description
            out[identity] = record
    return out


# What a Scheduler schedule is restored from (CreateSchedule's arguments).
ZONED_FIELDS = ("Name", "GroupName", "Description", "ScheduleExpression", "ScheduleExpressionTimezone",
                "FlexibleTimeWindow", "Target", "State")


def zoned_records(backend: Any) -> dict[str, Record]:
    out: dict[str, Record] = {}
    for group in list(backend.schedule_groups.values()):
        for schedule in list(group.schedules.values()):
            doc = schedule.to_dict()
            identity = f"{group.name}/{schedule.name}"
            out[identity] = {"t": "zs", "id": identity, **{k: doc[k] for k in ZONED_FIELDS if doc.get(k) is not None}}
    return out


def machine_records(backend: Any) -> dict[str, Record]:
    out = {}
    for sm in list(backend.state_machines):
        listed = backend.list_tags_for_resource(sm.arn)
        tags = listed.get("Tags", listed.get("tags", []))
        out[sm.arn] = {
            "t": "sm", "id": sm.arn, "name": sm.name, "definition": sm.definition, "roleArn": sm.roleArn,
            "tags": [{"key": t.get("Key", t.get("key")), "value": t.get("Value", t.get("value"))} for t in tags],
            "aliases": sorted(a.name for a in sm.aliases.values()),
        }
    return out
