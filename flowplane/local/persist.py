"""What the embedded control plane stored, kept in its state folder as it is written.

Layout (format 2):

    base.<G>.jsonl      the whole state at the last compaction, one record per line
    journal.<G>.jsonl   every change since, appended before the change is answered
    objects/<sha256>    S3 object bodies, by content

Records are whole states keyed by identity (an S3 key, a DynamoDB item, a
state machine, an execution, a rule) or log events to append (capture.py).
Boot folds base then journal into one `State` and writes it straight into
moto's backends in this process (no request per object), then captures every
change into the journal. Its cost is one read of the folder, and each command
after it costs the same whatever the history.

When the journal has grown past the base (and a floor), boot compacts: the
folded state is written as `base.<G+1>` (tmp, fsync, rename) and generation G
is removed; a crash at any point leaves either G or G+1 whole, and records
being whole states, a journal replayed over a base that already holds it
changes nothing.

A folder of format 1 (`snapshot.json`, written by earlier versions at every
save) is migrated at first start into `base.1.jsonl`; the old snapshot is kept
as `snapshot.json.migrated`.

Executions cannot be created through the API in a final state, so boot adds
them to moto's Step Functions backend directly. An execution still RUNNING when
the plane died comes back ABORTED with the reason, and is reported then.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from .journal import Journal, StateCorrupt, read_records, write_whole
from .moto_patches import Undo

log = logging.getLogger("flowplane.local.persist")

FORMAT = 2
OBJECTS = "objects"
SNAPSHOT_V1 = "snapshot.json"
CRASHED_CAUSE = "the local control plane stopped while this execution ran"
CRASHED_ERROR = "Flowplane.LocalPlaneStopped"
# Compact at boot when the journal is larger than the base and than this.
COMPACT_FLOOR_BYTES = 4 << 20
_GENERATION = re.compile(r"^(base|journal)\.(\d+)\.jsonl$")

Record = dict[str, Any]


def _when(value: Optional[str]) -> Optional[datetime]:
    return datetime.fromisoformat(value) if value else None


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


@dataclass
class Counts:
    objects: int = 0
    items: int = 0
    state_machines: int = 0
    executions: int = 0
    rules: int = 0
    zoned_schedules: int = 0
    log_events: int = 0
    # Restored executions: ARN -> statuses already reported to the recorder.
    reported: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class State:
    """The folded records: the last word on each identity, and every log event."""

    s3: dict[tuple[str, str], Record] = field(default_factory=dict)
    ddb: dict[str, Record] = field(default_factory=dict)
    machines: dict[str, Record] = field(default_factory=dict)
    executions: dict[str, Record] = field(default_factory=dict)
    rules: dict[str, Record] = field(default_factory=dict)
    zoned: dict[str, Record] = field(default_factory=dict)  # EventBridge Scheduler schedules
    logs: dict[tuple[str, str], list[list[Any]]] = field(default_factory=dict)

    def apply(self, r: Record) -> None:
        kind = r["t"]
        if kind == "s3":
            target, identity = self.s3, (r["b"], r["k"])
        elif kind == "ddb":
            from .capture import ddb_identity

            target, identity = self.ddb, ddb_identity(r["tb"], r["key"])
            if r.get("item") is None:
                self.ddb.pop(identity, None)
                return
        elif kind == "sm":
            target, identity = self.machines, r["id"]
        elif kind == "ex":
            target, identity = self.executions, r["id"]
        elif kind == "rule":
            target, identity = self.rules, r["id"]
        elif kind == "zs":
            target, identity = self.zoned, r["id"]
        elif kind == "log":
            self.logs.setdefault((r["g"], r["s"]), []).extend(r["e"])
            return
        else:
            return  # a record of a later version: ignored, kept until the next compaction drops it
        if r.get("del"):
            target.pop(identity, None)
        else:
            target[identity] = r

    def records(self) -> Iterator[Record]:
        yield from self.s3.values()
        yield from self.ddb.values()
        yield from self.machines.values()
        yield from self.executions.values()
        yield from self.rules.values()
        yield from self.zoned.values()
        for (group, stream), events in self.logs.items():
            yield {"t": "log", "g": group, "s": stream, "e": events}


def execution_record(execution: dict[str, Any]) -> Record:
    """A DescribeExecution answer as a record."""
    keep = ("name", "status", "startDate", "stopDate", "input", "output", "error", "cause", "stateMachineArn")
    return {"t": "ex", "id": execution["executionArn"], **{k: _iso(execution.get(k)) for k in keep}}


class StateStore:
    """The state folder of one embedded control plane."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir)
        self.objects = self.dir / OBJECTS
        self.generation = 0
        self.journal: Optional[Journal] = None
        self.state: Optional[State] = None
        self.objects_lock = threading.Lock()  # between storing a body and compaction removing old ones
        self._compacting: Optional[threading.Thread] = None
        self._journal_length = 0
        self._base_size = 0

    def _path(self, kind: str, generation: int) -> Path:
        return self.dir / f"{kind}.{generation}.jsonl"

    @property
    def journal_path(self) -> Path:
        return self._path("journal", self.generation)

    def exists(self) -> bool:
        """Whether the folder holds any state (of either format)."""
        if (self.dir / SNAPSHOT_V1).exists():
            return True
        try:
            return any(_GENERATION.match(p.name) for p in self.dir.iterdir())
        except OSError:
            return False

    # --- loading -------------------------------------------------------------------------

    def load(self) -> State:
        """Fold the folder's records into a State; migrates format 1. Raises StateCorrupt."""
        self.dir.mkdir(parents=True, exist_ok=True)
        generations: dict[str, list[int]] = {"base": [], "journal": []}
        for p in self.dir.iterdir():
            m = _GENERATION.match(p.name)
            if m:
                generations[m[1]].append(int(m[2]))
            elif p.name.endswith(".jsonl.tmp"):
                p.unlink(missing_ok=True)  # a compaction cut short: its generation is still whole
        if not generations["base"] and not generations["journal"] and (self.dir / SNAPSHOT_V1).exists():
            self._migrate_v1()
            generations["base"] = [1]
        base = max(generations["base"], default=0)
        journals = sorted(n for n in generations["journal"] if n >= base)
        # A journal of the last compaction's generation onwards: base B holds journals < B.
        self.generation = journals[-1] if journals else base
        state = State()
        if generations["base"]:
            records, _ = read_records(self._path("base", base), tolerate_torn_tail=False)
            for r in records:
                state.apply(r)
        self._journal_length = 0
        for n in journals:
            records, length = read_records(self._path("journal", n))
            for r in records:
                state.apply(r)
            self._journal_length += length
        self._base_size = self._path("base", base).stat().st_size if generations["base"] else 0
        for kind, numbers in generations.items():
            for n in numbers:
                if n < base:
                    self._path(kind, n).unlink(missing_ok=True)
        self.state = state
        return state

    def _migrate_v1(self) -> None:
        path = self.dir / SNAPSHOT_V1
        try:
            snapshot = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise StateCorrupt(path, f"not readable as JSON: {e}") from None
        if not isinstance(snapshot, dict) or snapshot.get("format") != 1:
            found = snapshot.get("format") if isinstance(snapshot, dict) else type(snapshot).__name__
            raise StateCorrupt(path, f"format {found!r}; this flowplane migrates format 1 and reads {FORMAT}")
        try:
            records = list(_v1_records(snapshot, self.objects))
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise StateCorrupt(path, f"a format-1 snapshot missing a part ({type(e).__name__}: {e})") from None
        write_whole(self._path("base", 1), iter(records))
        path.rename(path.with_name(SNAPSHOT_V1 + ".migrated"))
        log.info("migrated %s (format 1) to %s", path, self._path("base", 1))

    def should_compact(self) -> bool:
        return self._journal_length > max(COMPACT_FLOOR_BYTES, self._base_size)

    def _compact(self, state: State, generation: int, started: float) -> None:
        """Write `state` (every record below `generation`) as that generation's base, then drop
        what it replaces. Runs beside the serving plane: new records go to `generation`'s journal."""
        try:
            write_whole(self._path("base", generation), state.records())
        except OSError as e:
            log.warning("compacting %s failed (%s); the journals stay, and the next start tries again", self.dir, e)
            return
        for p in self.dir.iterdir():
            m = _GENERATION.match(p.name)
            if m and int(m[2]) < generation:
                p.unlink(missing_ok=True)
        keep = {r["f"] for r in state.s3.values()}
        for path in list(self.objects.iterdir()) if self.objects.exists() else []:
            if path.name in keep or path.name.startswith("."):
                continue
            with self.objects_lock:
                # A body stored (or stored again) since the compaction began is named by the new journal.
                try:
                    if path.stat().st_mtime < started:
                        path.unlink()
                except FileNotFoundError:
                    pass
        log.info("compacted %s into %s", self.dir, self._path("base", generation).name)

    def wait_for_compaction(self, timeout: Optional[float] = None) -> None:
        if self._compacting is not None:
            self._compacting.join(timeout)

    # --- into moto --------------------------------------------------------------------------

    def restore(self, session: Any, account: str, region: str) -> Counts:
        """Load the folder and put its state into moto, in this process. Before any hook is installed."""
        state = self.load() if self.state is None else self.state
        counts = Counts()
        self._restore_s3(state, account, region, counts)
        self._restore_dynamodb(state, account, region, counts)
        self._restore_logs(state, account, region, counts)
        self._restore_stepfunctions(state, account, region, counts)
        self._restore_rules(state, session.client("events"), counts)
        self._restore_zoned(state, session.client("scheduler"), counts)
        return counts

    def _restore_s3(self, state: State, account: str, region: str, counts: Counts) -> None:
        import threading

        from moto.s3.models import s3_backends
        from moto.utilities.utils import LowercaseDict

        from .capture import DiskBody

        backend = s3_backends[account]["aws"]
        template = None
        # One listing rather than a stat per object (15,000 with a 1,000-run history).
        try:
            bodies = set(os.listdir(self.objects))
        except FileNotFoundError:
            bodies = set()
        folder = os.fspath(self.objects)
        for (bucket_name, key_name), r in state.s3.items():
            if bucket_name not in backend.buckets:
                backend.create_bucket(bucket_name, region)
            if r["f"] not in bodies:
                log.warning("the body of s3://%s/%s is missing from %s; skipped", bucket_name, key_name, self.objects)
                continue
            path = os.path.join(folder, r["f"])
            if template is None:  # one key made by moto; the others are copies of its fields
                template = backend.put_object(bucket_name, key_name, b"", disable_notification=True)
                template._value_buffer.close()
            # FakeKey's constructor costs ~70 us (a spooled temp file, an ACL, a state machine);
            # a restored key differs from the template only in these fields.
            key = object.__new__(type(template))
            key.__dict__.update(template.__dict__)
            key.name, key.bucket_name = key_name, bucket_name
            key._value_buffer = DiskBody(path, r["n"])
            key.contentsize, key._etag = r["n"], r["e"]
            key.lock = threading.Lock()
            key._metadata = LowercaseDict()
            key._metadata["Content-Type"] = "binary/octet-stream"
            key._fp_file, key._fp_bucket = r["f"], bucket_name
            if r.get("lm"):
                key.last_modified = datetime.fromisoformat(r["lm"])
            if r.get("m"):
                key.set_metadata(dict(r["m"]))
            backend.buckets[bucket_name].keys.setlist(key_name, [key])
            counts.objects += 1

    def _restore_dynamodb(self, state: State, account: str, region: str, counts: Counts) -> None:
        from moto.dynamodb.models import dynamodb_backends

        from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict

        backend = dynamodb_backends[account][region]
        missing: set[str] = set()
        for r in state.ddb.values():
            table = backend.tables.get(r["tb"])
            if table is None:
                missing.add(r["tb"])
                continue
            # Straight into the table: each item passed moto's checks when it was written, and
            # Table.put_item re-checks the 400 KB limit once per attribute (quadratic per item).
            attrs = r["item"]
            item = Item.__new__(Item)
            item.attrs = LimitedSizeDict({k: _dynamo_type(v, DynamoType) for k, v in attrs.items()})
            item.hash_key = _dynamo_type(attrs[table.hash_key_attr], DynamoType)
            item.range_key = _dynamo_type(attrs[table.range_key_attr], DynamoType) if table.range_key_attr else None
            if item.range_key is not None:
                table.items[item.hash_key][item.range_key] = item
            else:
                table.items[item.hash_key] = item
            counts.items += 1
        for name in missing:
            log.warning("the state holds items of a table %s that this stack no longer has; skipped", name)

    def _restore_logs(self, state: State, account: str, region: str, counts: Counts) -> None:
        # Through the backend: the API refuses events older than 14 days, which a restart must keep.
        from moto.logs.models import logs_backends

        backend = logs_backends[account][region]
        for (group, stream_name), events in state.logs.items():
            if group not in backend.groups:
                backend.create_log_group(group, {})
            streams = backend.groups[group].streams
            if stream_name not in streams:
                backend.create_log_stream(group, stream_name)
            ordered = sorted(events, key=lambda e: e[0])
            streams[stream_name].put_log_events([{"timestamp": ts, "message": m} for ts, m in ordered])
            counts.log_events += len(events)

    def _restore_stepfunctions(self, state: State, account: str, region: str, counts: Counts) -> None:
        from moto.stepfunctions.models import StepFunctionBackend
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        backend = stepfunctions_parser_backends[account][region]
        by_name = {}
        for m in state.machines.values():
            # moto's own create, less the parse of the definition (100 ms: it was parsed when it
            # was deployed, and an execution parses it again anyway). Publishes a version as
            # CreateStateMachine(publish=True) does; the aliases point at it.
            machine = StepFunctionBackend.create_state_machine(
                backend, name=m["name"], definition=m["definition"], roleArn=m["roleArn"], publish=True,
                tags=m.get("tags") or None,
            )
            for alias in m.get("aliases", []):
                backend.create_state_machine_alias(
                    alias, [{"stateMachineVersionArn": machine.latest_version.arn, "weight": 100}], None
                )
            by_name[m["name"]] = machine.arn
            counts.state_machines += 1
        for e in state.executions.values():
            machine = by_name.get(e["id"].split(":")[6])
            if machine is None:
                continue  # its state machine was deleted
            counts.reported[e["id"]] = _add_execution(account, region, machine, e)
            counts.executions += 1

    def _restore_rules(self, state: State, events: Any, counts: Counts) -> None:
        for r in state.rules.values():
            bus = r.get("bus", "default")
            if bus != "default":
                try:
                    events.create_event_bus(Name=bus)
                except events.exceptions.ResourceAlreadyExistsException:
                    pass
            keep = {k: r[k] for k in ("Name", "ScheduleExpression", "EventPattern", "State", "Description") if k in r}
            events.put_rule(**keep, EventBusName=bus)
            if r.get("Targets"):
                events.put_targets(Rule=r["Name"], EventBusName=bus, Targets=r["Targets"])
            counts.rules += 1

    def _restore_zoned(self, state: State, scheduler: Any, counts: Counts) -> None:
        from .capture import ZONED_FIELDS

        for r in state.zoned.values():
            scheduler.create_schedule(**{k: r[k] for k in ZONED_FIELDS if r.get(k) is not None})
            counts.zoned_schedules += 1

    # --- capturing --------------------------------------------------------------------------

    def open_journal(self, skip_rules: Callable[[], set[str]]) -> Undo:
        """Start recording every change (after restore, before serving); the undo stops it.

        A journal grown past the base is compacted in the background: the state loaded at start
        is written as the next generation's base while new records go to its journal.
        """
        import time

        from .capture import Capture

        assert self.state is not None, "load before open_journal"
        state, valid_length = self.state, self._journal_length
        if self.should_compact():
            self.generation += 1
            valid_length = 0
            self._compacting = threading.Thread(
                target=self._compact, args=(state, self.generation, time.time()), daemon=True,
                name="flowplane-local-compaction")
        self.journal = Journal(self.journal_path, valid_length if self.journal_path.exists() else 0)
        capture = Capture(self.journal, self.objects, skip_rules, self.objects_lock)
        uninstall = capture.install(state.machines, state.rules, state.zoned)
        self._known_executions = dict(state.executions)
        # From here moto holds the state; the folded copy lives on only for the compaction.
        self.state = None
        if self._compacting is not None:
            self._compacting.start()

        def close() -> None:
            uninstall()
            self.wait_for_compaction(60)
            if self.journal is not None:
                self.journal.close()
                self.journal = None

        return close

    def record_execution(self, execution: dict[str, Any]) -> None:
        """An execution's status as the watcher saw it (a DescribeExecution answer)."""
        if self.journal is None:
            return
        record = execution_record(execution)
        if self._known_executions.get(record["id"]) != record:
            self._known_executions[record["id"]] = record
            self.journal.append(record)


def _add_execution(account: str, region: str, machine_arn: str, saved: Record) -> list[str]:
    """Put an execution back on its state machine; the statuses already reported."""
    from moto.stepfunctions.parser.api import ExecutionStatus
    from moto.stepfunctions.parser.backend.execution import Execution
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    backend = stepfunctions_parser_backends[account][region]
    machine = backend.describe_state_machine(machine_arn)
    status, error, cause = saved["status"], saved.get("error"), saved.get("cause")
    stop = _when(saved.get("stopDate"))
    reported = [status, "RUNNING"]
    if status == "RUNNING":
        status, error, cause = "ABORTED", CRASHED_ERROR, CRASHED_CAUSE
        stop = datetime.now(timezone.utc)
        reported = ["RUNNING"]  # the ABORTED is news: the watcher reports it
    execution = Execution(
        name=saved["name"],
        sm_type=machine.sm_type,
        role_arn=machine.roleArn,
        exec_arn=saved["id"],
        account_id=account,
        region_name=region,
        state_machine=machine,
        start_date=_when(saved.get("startDate")) or datetime.now(timezone.utc),
        cloud_watch_logging_session=None,
        activity_store={},
        input_data=saved.get("input") or "{}",
    )
    execution.exec_status = ExecutionStatus(status)
    execution.stop_date = stop
    if saved.get("output") is not None:
        execution.output = json.loads(saved["output"])
    execution.error, execution.cause = error, cause
    machine.executions.append(execution)
    return reported


def _v1_records(snapshot: dict[str, Any], objects: Path) -> Iterator[Record]:
    """A format-1 snapshot as format-2 records (bodies stay where they are in objects/)."""
    for b in snapshot.get("s3", []):
        for o in b["objects"]:
            yield {"t": "s3", "b": b["bucket"], "k": o["key"], "f": o["file"], "e": o["etag"].strip('"'),
                   "n": _size(objects / o["file"]), "m": {"Content-Type": o["content_type"]} if o.get("content_type") else {}}
    for t in snapshot.get("dynamodb", []):
        names = [k["AttributeName"] for k in t["table"]["KeySchema"]]
        for item in t["items"]:
            key = {n: item[n] for n in names if n in item}
            yield {"t": "ddb", "tb": t["table"]["TableName"], "key": key, "item": item}
    for m in snapshot.get("stepfunctions", []):
        yield {"t": "sm", "id": m["arn"], "name": m["name"], "definition": m["definition"], "roleArn": m["roleArn"],
               "tags": m.get("tags", []), "aliases": m.get("aliases", [])}
        for e in m.get("executions", []):
            yield {"t": "ex", "id": e["executionArn"], "stateMachineArn": m["arn"],
                   **{k: e.get(k) for k in ("name", "status", "startDate", "stopDate", "input", "output", "error",
                                            "cause")}}
    for r in snapshot.get("rules", []):
        bus = r.get("EventBusName", "default")
        yield {"t": "rule", "id": f"{bus}/{r['Name']}", "bus": bus,
               **{k: r[k] for k in ("Name", "ScheduleExpression", "EventPattern", "State", "Description", "Targets")
                  if k in r}}
    for g in snapshot.get("logs", []):
        for s in g["streams"]:
            if s["events"]:
                yield {"t": "log", "g": g["group"], "s": s["name"],
                       "e": [[e["timestamp"], e["message"]] for e in s["events"]]}



def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # restore skips a body that is missing, with a warning


def _dynamo_type(value: dict[str, Any], cls: type) -> Any:
    """moto's DynamoType (`cls`) for one attribute value of the wire format, built as its
    constructor builds it (lists and maps of DynamoType all the way down) at a fraction of the
    cost: restore makes one per attribute of every stored item (100,000 with 1,000 runs)."""
    ((kind, inner),) = value.items()
    made = object.__new__(cls)
    made.type = kind
    if kind == "L":
        inner = [_dynamo_type(v, cls) for v in inner]
    elif kind == "M":
        inner = {k: _dynamo_type(v, cls) for k, v in inner.items()}
    made.value = inner
    return made
