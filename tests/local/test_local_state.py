"""The embedded plane's state folder (format 2): the journal, folding, compaction,
migration from format 1, damaged files, and moto's transactions at any table size."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import boto3
import pytest

from flowplane.local import moto_patches, persist
from flowplane.local.journal import Journal, StateCorrupt, encode, read_records, write_whole
from flowplane.local.persist import State, StateStore
from flowplane.local.plane import LocalPlane, PlaneConfig, PlaneError

pytestmark = pytest.mark.aws

FORMAT1 = Path(__file__).parent / "data" / "state_format1"
FORMAT1_RUN = "sfn-5efbb135-c1a2-45aa-be60-615188728fce"


# --- the journal ------------------------------------------------------------------------------------


def test_a_torn_last_line_is_dropped_and_cut_before_the_next_append(tmp_path):
    path = tmp_path / "journal.0.jsonl"
    path.write_bytes(b'{"t":"log","g":"g","s":"s","e":[[1,"a"]]}\n{"t":"log","g":"g","s"')
    records, length = read_records(path)
    assert [r["e"] for r in records] == [[[1, "a"]]] and length == path.read_bytes().index(b"\n") + 1
    journal = Journal(path, length)
    journal.append({"t": "log", "g": "g", "s": "s", "e": [[2, "b"]]})
    journal.close()
    assert [r["e"][0][1] for r in read_records(path)[0]] == ["a", "b"]


@pytest.mark.parametrize("bad,problem", [
    (b'{"t": "ddb", "tb": \n', "line 2 is not JSON"),
    (b'[1, 2]\n', "line 2 is not a state record"),
    (b'{"no": "kind"}\n', "line 2 is not a state record"),
])
def test_a_bad_line_before_the_end_is_corruption_named_with_its_file_and_line(tmp_path, bad, problem):
    path = tmp_path / "journal.0.jsonl"
    path.write_bytes(b'{"t":"log","g":"g","s":"s","e":[]}\n' + bad + b'{"t":"log","g":"g","s":"s","e":[]}\n')
    with pytest.raises(StateCorrupt) as e:
        read_records(path)
    assert f"{path} is damaged ({problem}" in str(e.value) and f"mv {path} {path}.broken" in str(e.value)


def test_a_base_file_must_be_whole(tmp_path):
    path = tmp_path / "base.1.jsonl"
    write_whole(path, iter([{"t": "log", "g": "g", "s": "s", "e": []}]))
    assert read_records(path, tolerate_torn_tail=False)[0] == [{"t": "log", "g": "g", "s": "s", "e": []}]
    path.write_bytes(path.read_bytes() + b'{"t":')
    with pytest.raises(StateCorrupt, match="its last line is cut short"):
        read_records(path, tolerate_torn_tail=False)


def _log(n: int) -> dict:
    return {"t": "log", "g": "g", "s": "s", "e": [[n, f"m{n}"]]}


def test_a_compaction_cut_short_leaves_the_older_generation_whole(tmp_path):
    write_whole(tmp_path / "base.1.jsonl", iter([_log(1)]))
    (tmp_path / "journal.1.jsonl").write_bytes(b"".join(encode(_log(n)) for n in (2, 3)))
    (tmp_path / "journal.2.jsonl").write_bytes(encode(_log(4)))  # written while base.2 was being made
    (tmp_path / "base.2.jsonl.tmp").write_bytes(encode(_log(1))[:10])  # the compaction, cut short
    store = StateStore(tmp_path)
    assert store.load().logs == {("g", "s"): [[n, f"m{n}"] for n in (1, 2, 3, 4)]}
    assert store.generation == 2 and not (tmp_path / "base.2.jsonl.tmp").exists()
    # Finished, the new base holds generation 1; leftovers of it are not read again, and go.
    write_whole(tmp_path / "base.2.jsonl", iter([_log(1), _log(2), _log(3)]))
    store = StateStore(tmp_path)
    assert store.load().logs == {("g", "s"): [[n, f"m{n}"] for n in (1, 2, 3, 4)]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.2.jsonl", "journal.2.jsonl"]


def test_folding_keeps_the_last_word_on_each_thing_and_every_log_event():
    state = State()
    for r in [
        {"t": "s3", "b": "b", "k": "x", "f": "1", "n": 1}, {"t": "s3", "b": "b", "k": "x", "f": "2", "n": 1},
        {"t": "s3", "b": "b", "k": "gone", "f": "3", "n": 1}, {"t": "s3", "b": "b", "k": "gone", "del": True},
        {"t": "ddb", "tb": "T", "key": {"PK": {"S": "a"}}, "item": {"PK": {"S": "a"}, "v": {"N": "1"}}},
        {"t": "ddb", "tb": "T", "key": {"PK": {"S": "a"}}, "item": {"PK": {"S": "a"}, "v": {"N": "2"}}},
        {"t": "ddb", "tb": "T", "key": {"PK": {"S": "b"}}, "item": {"PK": {"S": "b"}}},
        {"t": "ddb", "tb": "T", "key": {"PK": {"S": "b"}}, "item": None},
        {"t": "ex", "id": "e1", "status": "RUNNING"}, {"t": "ex", "id": "e1", "status": "SUCCEEDED"},
        {"t": "rule", "id": "default/r", "Name": "r"}, {"t": "rule", "id": "default/r", "del": True},
        {"t": "log", "g": "g", "s": "s", "e": [[1, "a"]]}, {"t": "log", "g": "g", "s": "s", "e": [[2, "b"]]},
        {"t": "from-a-later-version"},
    ]:
        state.apply(r)
    assert [r["f"] for r in state.s3.values()] == ["2"]
    assert [r["item"]["v"] for r in state.ddb.values()] == [{"N": "2"}]
    assert state.executions["e1"]["status"] == "SUCCEEDED" and state.rules == {}
    assert state.logs == {("g", "s"): [[1, "a"], [2, "b"]]}
    # What a compaction writes folds back to the same state.
    again = State()
    for r in state.records():
        again.apply(r)
    assert again == state


# --- moto's transactions -----------------------------------------------------------------------------


@pytest.fixture()
def table():
    from moto import mock_aws

    with mock_aws():
        undo = moto_patches.install_transact_fix()
        try:
            ddb = boto3.client("dynamodb", region_name="us-east-1")
            ddb.create_table(TableName="T", BillingMode="PAY_PER_REQUEST",
                             KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"},
                                        {"AttributeName": "SK", "KeyType": "RANGE"}],
                             AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"},
                                                   {"AttributeName": "SK", "AttributeType": "S"}])
            yield ddb
        finally:
            undo()


def _items(ddb) -> list[dict]:
    return sorted(ddb.scan(TableName="T")["Items"], key=lambda i: (i["PK"]["S"], i["SK"]["S"]))


def test_a_failed_transaction_puts_back_exactly_what_it_touched_without_copying_the_table(table, monkeypatch):
    for i in range(50):
        table.put_item(TableName="T", Item={"PK": {"S": "run"}, "SK": {"S": f"{i:03d}"}, "v": {"N": str(i)}})
    before = _items(table)
    from moto.dynamodb.models.table import Table

    installed, copies = Table.__dict__["__deepcopy__"], []

    def watched(self, memo):
        result = installed(self, memo)
        copies.append(result is self)
        return result

    monkeypatch.setattr(Table, "__deepcopy__", watched)
    with pytest.raises(table.exceptions.TransactionCanceledException):
        table.transact_write_items(TransactItems=[
            {"Put": {"TableName": "T", "Item": {"PK": {"S": "run"}, "SK": {"S": "new"}}}},
            {"Update": {"TableName": "T", "Key": {"PK": {"S": "run"}, "SK": {"S": "001"}},
                        "UpdateExpression": "SET v = :v", "ExpressionAttributeValues": {":v": {"N": "99"}}}},
            {"Delete": {"TableName": "T", "Key": {"PK": {"S": "run"}, "SK": {"S": "002"}}}},
            {"ConditionCheck": {"TableName": "T", "Key": {"PK": {"S": "run"}, "SK": {"S": "003"}},
                                "ConditionExpression": "attribute_not_exists(PK)"}},
        ])
    assert _items(table) == before
    # A successful one changes what it says.
    table.transact_write_items(TransactItems=[
        {"Put": {"TableName": "T", "Item": {"PK": {"S": "run"}, "SK": {"S": "new"}}}},
        {"Delete": {"TableName": "T", "Key": {"PK": {"S": "run"}, "SK": {"S": "002"}}}},
    ])
    after = {i["SK"]["S"] for i in _items(table)}
    assert "new" in after and "002" not in after and len(after) == 50
    # moto asked for its whole-table backups (at least once per transaction) and got the table itself.
    assert len(copies) >= 2 and all(copies)


# --- through a plane ---------------------------------------------------------------------------------

def _start(state: Path, **options) -> LocalPlane:
    return LocalPlane(PlaneConfig(state_dir=state, vcpus=2, **options)).start()


@pytest.mark.slow
def test_a_format_1_folder_is_migrated_and_its_runs_stay_readable(tmp_path, monkeypatch):
    state = tmp_path / "state"
    shutil.copytree(FORMAT1, state)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    plane = _start(state)
    try:
        assert plane.restored.state_machines == 2 and plane.restored.executions == 1
        monkeypatch.setenv("FLOWPLANE_API_URL", plane.url)
        from flowplane.client import Run, namespace

        namespace(None)
        run = Run(f"ParameterFlow/{FORMAT1_RUN}")
        assert run.successful and run.data.alpha == 0.25 and "alpha is 0.250000" in run["start"].task.stdout
        events = plane.session.client("events")
        assert events.describe_rule(Name="flowplane-local-schedule-HourlyFlow")["ScheduleExpression"] == \
            "cron(0 * * * ? *)"
    finally:
        plane.stop()
    assert not (state / "snapshot.json").exists() and (state / "snapshot.json.migrated").exists()
    assert (state / "base.1.jsonl").exists()
    # The next start reads format 2 only, and still has everything.
    plane = _start(state)
    try:
        assert plane.restored.state_machines == 2 and plane.restored.executions == 1
    finally:
        plane.stop()


@pytest.mark.slow
def test_a_damaged_state_file_stops_the_plane_before_anything_starts(tmp_path):
    state = tmp_path / "state"
    shutil.copytree(FORMAT1, state)
    snapshot = state / "snapshot.json"
    snapshot.write_text(snapshot.read_text()[:-200])
    with pytest.raises(PlaneError, match=r"snapshot.json is damaged \(not readable as JSON"):
        _start(state)
    assert not (state / "base.1.jsonl").exists() and snapshot.exists()
    snapshot.write_text(json.dumps({"format": 7}))
    with pytest.raises(PlaneError, match="format 7; this flowplane migrates format 1 and reads 2"):
        _start(state)


@pytest.mark.slow
def test_a_journal_past_the_base_is_compacted_at_boot_with_nothing_lost(tmp_path, monkeypatch):
    state = tmp_path / "state"
    shutil.copytree(FORMAT1, state)
    plane = _start(state)  # migrates: base.1
    try:
        s3 = plane.session.client("s3")
        for i in range(20):
            s3.put_object(Bucket="flowplane-local", Key=f"scratch/{i}", Body=b"x" * i)
        s3.put_object(Bucket="flowplane-local", Key="scratch/0", Body=b"rewritten")
        s3.delete_object(Bucket="flowplane-local", Key="scratch/1")
        logs = plane.session.client("logs")
        logs.create_log_group(logGroupName="g")
        logs.create_log_stream(logGroupName="g", logStreamName="s")
        logs.put_log_events(logGroupName="g", logStreamName="s",
                            logEvents=[{"timestamp": int(time.time() * 1000) + i, "message": f"m{i}"} for i in range(5)])
    finally:
        plane.stop()
    assert StateStore(state).exists() and (state / "journal.1.jsonl").stat().st_size > 0
    monkeypatch.setattr(persist, "COMPACT_FLOOR_BYTES", 0)
    monkeypatch.setattr(StateStore, "should_compact", lambda self: self._journal_length > 0)
    plane = _start(state)
    try:
        # Compaction runs beside the serving plane; what is stored meanwhile goes to the new journal.
        s3 = plane.session.client("s3")
        # The body of scratch/1, deleted before: the compaction's sweep would remove its file, unless
        # stored again meanwhile.
        s3.put_object(Bucket="flowplane-local", Key="scratch/during", Body=b"x")
        plane.store.wait_for_compaction(30)
        assert sorted(p.name for p in state.glob("*.jsonl")) == ["base.2.jsonl", "journal.2.jsonl"]
        assert s3.get_object(Bucket="flowplane-local", Key="scratch/during")["Body"].read() == b"x"
        s3 = plane.session.client("s3")
        assert s3.get_object(Bucket="flowplane-local", Key="scratch/0")["Body"].read() == b"rewritten"
        assert s3.get_object(Bucket="flowplane-local", Key="scratch/19")["Body"].read() == b"x" * 19
        with pytest.raises(s3.exceptions.NoSuchKey):
            s3.get_object(Bucket="flowplane-local", Key="scratch/1")
        got = plane.session.client("logs").get_log_events(logGroupName="g", logStreamName="s", startFromHead=True)
        assert [e["message"] for e in got["events"]] == [f"m{i}" for i in range(5)]
        # Bodies no record names were collected; every one a record names is there.
        named = {r["f"] for name in ("base.2.jsonl", "journal.2.jsonl")
                 for r in read_records(state / name)[0] if r["t"] == "s3" and not r.get("del")}
        assert {p.name for p in (state / "objects").iterdir()} == named
    finally:
        plane.stop()
