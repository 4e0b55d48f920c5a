"""moto fixes 8, 9, 13, 18 and 19 (flowplane/local/moto_patches.py): transactions and queries whose
cost does not grow with the table, answers built without generic code, answering exactly what moto
itself answers.

The differential test drives one table through a random mix of every write path
(PutItem, UpdateItem changing index keys, DeleteItem, BatchWriteItem, transactions
that commit and that roll back) with the fixes installed, asks a set of queries
(table and both indexes, both directions, pages, filters), then takes the fixes
out and asks the same queries of moto's own code over the same items.
"""

from __future__ import annotations

import random

import boto3
import pytest

from flowplane.local import moto_patches

pytestmark = pytest.mark.aws


@pytest.fixture()
def ddb():
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        index = lambda n: {"IndexName": n, "Projection": {"ProjectionType": "ALL"},  # noqa: E731
                           "KeySchema": [{"AttributeName": f"{n}PK", "KeyType": "HASH"},
                                         {"AttributeName": f"{n}SK", "KeyType": "RANGE"}]}
        client.create_table(
            TableName="T", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"}
                                  for a in ("PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK")],
            GlobalSecondaryIndexes=[index("GSI1"), index("GSI2")],
        )
        yield client


def _item(rng: random.Random) -> dict:
    pk, sk = f"P{rng.randrange(6)}", f"S{rng.randrange(40):03d}"
    item = {"PK": {"S": pk}, "SK": {"S": sk}, "n": {"N": str(rng.randrange(100))}}
    if rng.random() < 0.6:  # sparse indexes, as the run items are
        item.update(GSI1PK={"S": f"RUNS#{rng.randrange(3)}"}, GSI1SK={"S": f"{rng.randrange(50):04d}#{pk}{sk}"})
    if rng.random() < 0.4:
        item.update(GSI2PK={"S": f"STATUS#{rng.choice(['running', 'failed'])}"}, GSI2SK={"S": f"{sk}#{pk}"})
    return item


def _key(rng: random.Random) -> dict:
    return {"PK": {"S": f"P{rng.randrange(6)}"}, "SK": {"S": f"S{rng.randrange(40):03d}"}}


def _write(ddb, rng: random.Random) -> None:
    op = rng.randrange(6)
    if op == 0:
        ddb.put_item(TableName="T", Item=_item(rng))
    elif op == 1:
        status = rng.choice(["running", "failed", "succeeded"])
        ddb.update_item(TableName="T", Key=_key(rng), UpdateExpression="SET GSI2PK = :s, GSI2SK = :o, n = :n",
                        ExpressionAttributeValues={":s": {"S": f"STATUS#{status}"}, ":o": {"S": "0001"},
                                                   ":n": {"N": "7"}})
    elif op == 2:
        ddb.update_item(TableName="T", Key=_key(rng), UpdateExpression="REMOVE GSI1PK, GSI1SK")
    elif op == 3:
        ddb.delete_item(TableName="T", Key=_key(rng))
    elif op == 4:
        items = {}
        for _ in range(rng.randrange(1, 6)):
            i = _item(rng)
            items[(i["PK"]["S"], i["SK"]["S"])] = i
        ddb.batch_write_item(RequestItems={"T": [{"PutRequest": {"Item": i}} for i in items.values()]})
    else:
        first, second = _item(rng), _item(rng)
        if (first["PK"], first["SK"]) == (second["PK"], second["SK"]):
            return
        fail = rng.random() < 0.5
        check = {"ConditionCheck": {"TableName": "T", "Key": _key(rng),
                                    "ConditionExpression": "attribute_exists(nothing_has_this)"}}
        ops = [{"Put": {"TableName": "T", "Item": first}},
               {"Update": {"TableName": "T", "Key": {"PK": second["PK"], "SK": second["SK"]},
                           "UpdateExpression": "SET GSI1PK = :p, GSI1SK = :o",
                           "ExpressionAttributeValues": {":p": {"S": "RUNS#9"}, ":o": {"S": "9999"}}}}]
        try:
            ddb.transact_write_items(TransactItems=ops + ([check] if fail else []))
        except (ddb.exceptions.TransactionCanceledException, ddb.exceptions.ClientError):
            pass


def _queries(ddb) -> list:
    answers = []
    asks = [dict(KeyConditionExpression="PK = :v", ExpressionAttributeValues={":v": {"S": f"P{p}"}}) for p in range(6)]
    asks += [dict(IndexName="GSI1", KeyConditionExpression="GSI1PK = :v",
                  ExpressionAttributeValues={":v": {"S": f"RUNS#{r}"}}) for r in (0, 1, 2, 9)]
    asks += [dict(IndexName="GSI2", KeyConditionExpression="GSI2PK = :v",
                  ExpressionAttributeValues={":v": {"S": f"STATUS#{s}"}}) for s in ("running", "failed", "succeeded")]
    asks += [dict(KeyConditionExpression="PK = :v AND begins_with(SK, :b)",
                  ExpressionAttributeValues={":v": {"S": "P1"}, ":b": {"S": "S01"}}),
             dict(IndexName="GSI1", KeyConditionExpression="GSI1PK = :v AND GSI1SK > :o", FilterExpression="n > :n",
                  ExpressionAttributeValues={":v": {"S": "RUNS#1"}, ":o": {"S": "0020"}, ":n": {"N": "30"}}),
             # A filter alone: Limit counts the items read before it (the first-page fix relies on it).
             dict(IndexName="GSI1", KeyConditionExpression="GSI1PK = :v", FilterExpression="n > :n",
                  ExpressionAttributeValues={":v": {"S": "RUNS#0"}, ":n": {"N": "50"}}),
             dict(KeyConditionExpression="PK = :v", FilterExpression="n < :n",
                  ExpressionAttributeValues={":v": {"S": "P2"}, ":n": {"N": "50"}}),
             # Projections: strings taken as they are (fix 18), a number and a missing one by moto.
             dict(IndexName="GSI1", KeyConditionExpression="GSI1PK = :v", ProjectionExpression="#k, SK",
                  ExpressionAttributeNames={"#k": "GSI1SK"}, ExpressionAttributeValues={":v": {"S": "RUNS#1"}}),
             dict(IndexName="GSI1", KeyConditionExpression="GSI1PK = :v", ProjectionExpression="GSI1SK, n, nothing",
                  FilterExpression="n > :n", ExpressionAttributeValues={":v": {"S": "RUNS#2"}, ":n": {"N": "20"}}),
             dict(KeyConditionExpression="PK = :v", ProjectionExpression="nothing",
                  ExpressionAttributeValues={":v": {"S": "P3"}})]
    for ask in asks:
        for limit in (1, 7):  # first pages, as `list-runs` and the Client API ask them
            for forward in (True, False):
                page = ddb.query(TableName="T", ScanIndexForward=forward, Limit=limit, **ask)
                answers.append((page["Items"], page.get("LastEvaluatedKey"), page["Count"], page["ScannedCount"]))
        for forward in (True, False):
            pages, start = [], None
            while True:  # pages of 3: ExclusiveStartKey from an index page, too
                page = ddb.query(TableName="T", ScanIndexForward=forward, Limit=3,
                                 **({"ExclusiveStartKey": start} if start else {}), **ask)
                pages.append((page["Items"], page.get("LastEvaluatedKey"), page["ScannedCount"]))
                start = page.get("LastEvaluatedKey")
                if not start:
                    break
            answers.append(pages)
    return answers


@pytest.mark.parametrize("seed", range(3))
def test_queries_and_transactions_answer_what_moto_answers(ddb, seed):
    rng = random.Random(seed)
    undo = [moto_patches.install_transact_fix(), moto_patches.install_query_fix(),
            moto_patches.install_dynamodb_answer_fix(), moto_patches.install_request_id_fix()]
    try:
        for step in range(300):
            _write(ddb, rng)
            if step in (150, 230):
                # builds the index maps and orders midway: later writes keep them up to date
                assert _queries(ddb)
        fixed = _queries(ddb)
    finally:
        for u in reversed(undo):
            u()
    assert fixed == _queries(ddb)
    assert sum(len(p[0]) for pages in fixed if isinstance(pages, list) for p in pages) > 50  # found plenty


def test_a_query_reads_only_its_partition(ddb, monkeypatch):
    from moto.dynamodb.models.table import Table

    undo = moto_patches.install_query_fix()
    try:
        for i in range(200):
            ddb.put_item(TableName="T", Item={"PK": {"S": f"P{i % 20}"}, "SK": {"S": f"{i:04d}"},
                                              "GSI1PK": {"S": f"RUNS#{i % 10}"}, "GSI1SK": {"S": f"{i:04d}"}})
        ddb.query(TableName="T", IndexName="GSI1", KeyConditionExpression="GSI1PK = :v",
                  ExpressionAttributeValues={":v": {"S": "RUNS#0"}})  # the index map is built once
        sorted_sizes = []
        patched = Table.__dict__["all_items"]
        monkeypatch.setattr(Table, "all_items", lambda self: sorted_sizes.append(len(r := patched(self))) or r)
        got = ddb.query(TableName="T", KeyConditionExpression="PK = :v", ExpressionAttributeValues={":v": {"S": "P3"}})
        by_index = ddb.query(TableName="T", IndexName="GSI1", KeyConditionExpression="GSI1PK = :v",
                             ExpressionAttributeValues={":v": {"S": "RUNS#4"}})
    finally:
        monkeypatch.undo()
        undo()
    assert len(got["Items"]) == 10 and len(by_index["Items"]) == 20
    assert sorted_sizes == [10, 20]  # not 200 each


# --- fix 13: items written to the response as they are held --------------------------------------


def _every_kind(n: int) -> dict:
    return {
        "PK": {"S": "P"}, "SK": {"S": f"S{n:03d}"}, "GSI1PK": {"S": "RUNS"}, "GSI1SK": {"S": f"{n:04d}"},
        "s": {"S": "é ✓ \"quoted\" \\ back"}, "empty": {"S": ""}, "n": {"N": "-12.50"}, "big": {"N": "1e30"},
        "t": {"BOOL": True}, "f": {"BOOL": False}, "null": {"NULL": True},
        "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2.5"]},
        "l": {"L": [{"S": "x"}, {"N": "1"}, {"L": []}, {"M": {}}]},
        "doc": {"M": {"params": {"M": {"alpha": {"N": "0.5"}, "tags": {"L": [{"S": "t"}]}}}, "none": {"NULL": True}}},
        **({"b": {"B": b"\x00\x01binary"}, "bs": {"BS": [b"x", b"y"]}} if n % 2 else {}),
    }


def _answers(ddb) -> list:
    key = {"PK": {"S": "P"}, "SK": {"S": "S003"}}
    return [  # the write first: both rounds then read the same items
        ddb.update_item(TableName="T", Key=key, UpdateExpression="SET touched = :t",
                        ExpressionAttributeValues={":t": {"BOOL": True}}, ReturnValues="ALL_NEW")["Attributes"],
        ddb.query(TableName="T", KeyConditionExpression="PK = :p", ExpressionAttributeValues={":p": {"S": "P"}},
                  Limit=4)["Items"],
        ddb.query(TableName="T", IndexName="GSI1", KeyConditionExpression="GSI1PK = :p",
                  ExpressionAttributeValues={":p": {"S": "RUNS"}}, ScanIndexForward=False),
        ddb.get_item(TableName="T", Key=key)["Item"],
        ddb.get_item(TableName="T", Key=key, ProjectionExpression="doc.params, l[1]")["Item"],
        ddb.scan(TableName="T")["Items"],
        ddb.batch_get_item(RequestItems={"T": {"Keys": [key]}})["Responses"],
    ]


def test_fix_13_writes_every_kind_of_attribute_as_moto_does(ddb, monkeypatch):
    for n in range(6):
        ddb.put_item(TableName="T", Item=_every_kind(n))
    seen = []
    plain = moto_patches._plain_wire
    monkeypatch.setattr(moto_patches, "_plain_wire", lambda v: seen.append(plain(v)) or seen[-1])
    undo = moto_patches.install_dynamodb_serializer_fix()
    try:
        fixed = _answers(ddb)
    finally:
        undo()
    theirs = _answers(ddb)
    for mine, moto_s in zip(fixed, theirs):
        if isinstance(mine, dict):
            mine.pop("ResponseMetadata", None)
            moto_s.pop("ResponseMetadata", None)
        assert mine == moto_s
    assert True in seen and False in seen  # items without binary took the fix; with, moto's path
    assert fixed[3]["b"] == {"B": b"\x00\x01binary"} and fixed[3]["bs"] == {"BS": [b"x", b"y"]}
    assert fixed[3]["doc"]["M"]["params"]["M"]["alpha"] == {"N": "0.5"} and fixed[3]["touched"] == {"BOOL": True}


def test_fix_13_takes_only_plain_wire_values():
    assert moto_patches._plain_wire({"M": {"a": {"L": [{"S": "x"}, {"NULL": True}]}}})
    for value in ({"B": "AAE="}, {"M": {"a": {"BS": ["eA=="]}}}, {"S": "x", "N": "1"}, {"S": 1}, {"N": 1},
                  {"L": [{"B": "eA=="}]}, {"X": "y"}, {}):
        assert not moto_patches._plain_wire(value), value


def test_a_first_page_reads_only_limit_plus_one_items(ddb, monkeypatch):
    for n in range(30):
        ddb.put_item(TableName="T", Item={"PK": {"S": "P"}, "SK": {"S": f"S{n:03d}"}, "GSI1PK": {"S": "RUNS"},
                                          "GSI1SK": {"S": f"{n:04d}"}})
    handed = []
    first_page = moto_patches._first_page
    monkeypatch.setattr(moto_patches, "_first_page", lambda *a: handed.append(first_page(*a)) or handed[-1])
    undo = moto_patches.install_query_fix()
    try:
        page = ddb.query(TableName="T", IndexName="GSI1", KeyConditionExpression="GSI1PK = :v",
                         ExpressionAttributeValues={":v": {"S": "RUNS"}}, ScanIndexForward=False, Limit=3)
        following = ddb.query(TableName="T", IndexName="GSI1", KeyConditionExpression="GSI1PK = :v",
                              ExpressionAttributeValues={":v": {"S": "RUNS"}}, ScanIndexForward=False, Limit=3,
                              ExclusiveStartKey=page["LastEvaluatedKey"])
    finally:
        undo()
    assert [i["GSI1SK"]["S"] for i in page["Items"]] == ["0029", "0028", "0027"]
    assert [i["GSI1SK"]["S"] for i in following["Items"]] == ["0026", "0025", "0024"]
    assert [len(h) for h in handed] == [4, 30]  # a later page reads the partition, as before


def test_an_index_partitions_order_follows_every_write(ddb):
    def newest(limit: int = 2) -> list[str]:
        page = ddb.query(TableName="T", IndexName="GSI1", KeyConditionExpression="GSI1PK = :v",
                         ExpressionAttributeValues={":v": {"S": "RUNS"}}, ScanIndexForward=False, Limit=limit)
        return [i["GSI1SK"]["S"] for i in page["Items"]]

    def put(n: int, order: str) -> None:
        ddb.put_item(TableName="T", Item={"PK": {"S": "P"}, "SK": {"S": f"S{n:03d}"},
                                          "GSI1PK": {"S": "RUNS"}, "GSI1SK": {"S": order}})

    undo = moto_patches.install_query_fix()
    try:
        for n in range(10):
            put(n, f"{n:04d}")
        assert newest() == ["0009", "0008"]  # the order is kept from here
        put(10, "0010")
        assert newest() == ["0010", "0009"]
        ddb.update_item(TableName="T", Key={"PK": {"S": "P"}, "SK": {"S": "S003"}},
                        UpdateExpression="SET GSI1SK = :o", ExpressionAttributeValues={":o": {"S": "0099"}})
        assert newest() == ["0099", "0010"]
        ddb.delete_item(TableName="T", Key={"PK": {"S": "P"}, "SK": {"S": "S003"}})
        ddb.update_item(TableName="T", Key={"PK": {"S": "P"}, "SK": {"S": "S010"}}, UpdateExpression="REMOVE GSI1PK")
        assert newest() == ["0009", "0008"]
        cancelled = [{"Put": {"TableName": "T", "Item": {"PK": {"S": "P"}, "SK": {"S": "S050"},
                                                          "GSI1PK": {"S": "RUNS"}, "GSI1SK": {"S": "0500"}}}},
                     {"ConditionCheck": {"TableName": "T", "Key": {"PK": {"S": "P"}, "SK": {"S": "S000"}},
                                         "ConditionExpression": "attribute_exists(nothing_has_this)"}}]
        with pytest.raises(ddb.exceptions.TransactionCanceledException):
            ddb.transact_write_items(TransactItems=cancelled)
        assert newest() == ["0009", "0008"]
        put(11, "0011")
        assert newest(20) == ["0011", "0009", "0008", "0007", "0006", "0005", "0004", "0002", "0001", "0000"]
    finally:
        undo()


def test_fix_18_answers_every_kind_of_attribute_as_moto_does(ddb, monkeypatch):
    for n in range(6):
        ddb.put_item(TableName="T", Item=_every_kind(n))
    def ask(expression: str, *names: str) -> dict:
        return {"ProjectionExpression": expression, "ExpressionAttributeNames": {f"#{n}": n for n in names}}

    asks = [ask("#s, #t, #f, #empty", "s", "t", "f", "empty"), ask("#s, #n", "s", "n"),
            ask("#doc.#params", "doc", "params"), ask("l[1], #s", "s"), ask("#b, #s", "b", "s"),
            ask("#null", "null")]
    key = {"PK": {"S": "P"}, "SK": {"S": "S003"}}

    def answers() -> list:
        found = [ddb.query(TableName="T", IndexName="GSI1", KeyConditionExpression="GSI1PK = :p",
                           ExpressionAttributeValues={":p": {"S": "RUNS"}}, Limit=4, **ask)["Items"] for ask in asks]
        return found + [ddb.get_item(TableName="T", Key=key, **ask)["Item"] for ask in asks] + _answers(ddb)[1:]

    taken = []
    undo = [moto_patches.install_dynamodb_answer_fix(), moto_patches.install_request_id_fix()]
    original = moto_patches._original_item_project
    monkeypatch.setattr(moto_patches, "_original_item_project",
                        lambda *a: taken.append("moto") or original(*a))
    try:
        fixed = answers()
    finally:
        for u in reversed(undo):
            u()
    theirs = answers()
    for mine, moto_s in zip(fixed, theirs):
        if isinstance(mine, dict):
            mine.pop("ResponseMetadata", None)
            moto_s.pop("ResponseMetadata", None)
        assert mine == moto_s
    assert fixed[0][0] == {"s": {"S": "é ✓ \"quoted\" \\ back"}, "t": {"BOOL": True}, "f": {"BOOL": False},
                           "empty": {"S": ""}}
    # numbers, nested paths, binary and null took moto's path; strings and booleans did not
    assert 0 < len(taken) < len(asks) * 4 + len(asks)


def test_fix_18_converts_as_moto_does():
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from moto.dynamodb.models.utilities import dynamo_to_dict

    items = [Item(DynamoType(raw["PK"]), DynamoType(raw["SK"]), raw) for raw in (_every_kind(1), _every_kind(2))]
    answer = {"Items": [i.attrs for i in items], "Count": 2, "LastEvaluatedKey": {"PK": {"S": "P"}}, "x": [1.5, None]}
    undo = moto_patches.install_dynamodb_answer_fix()
    try:
        sizes = [i.size() for i in items]
        converted = moto_patches._dynamo_to_dict(answer)
    finally:
        undo()
    assert converted == dynamo_to_dict(answer)
    assert converted["Items"][0]["b"] == {"B": b"\x00\x01binary"}  # base64 decoded, as moto does
    assert sizes == [i.size() for i in items] and sizes[0] > sizes[1]


def test_fix_19_adds_the_request_id_as_moto_does():
    from moto.core.responses import BaseResponse

    xml = "<R><RequestId>old</RequestId></R>"
    undo = moto_patches.install_request_id_fix()
    try:
        fixed = [BaseResponse._enrich_response({"status": 200}, body) for body in ('{"a": 1}', xml, b"<RequestId>")]
    finally:
        undo()
    for (headers, body), given in zip(fixed, ('{"a": 1}', xml, b"<RequestId>")):
        assert headers["status"] == "200" and len(headers["x-amzn-requestid"]) == 52
        if given is xml:
            assert body == f"<R><RequestId>{headers['x-amzn-requestid']}</RequestId></R>"
        else:
            assert body == given


def _number_pages(ddb) -> list:
    """Every page of a partition with a number range key, by Limit and by moto's 1 MB, both ways."""
    out = []
    for limit in (None, 4):
        for forward in (True, False):
            pages, start = [], None
            while True:
                page = ddb.query(TableName="N", KeyConditionExpression="k = :v", ScanIndexForward=forward,
                                 ExpressionAttributeValues={":v": {"S": "join"}},
                                 **({"Limit": limit} if limit else {}), **({"ExclusiveStartKey": start} if start else {}))
                pages.append(([int(i["i"]["N"]) for i in page["Items"]], page.get("LastEvaluatedKey"),
                              page["ScannedCount"]))
                start = page.get("LastEvaluatedKey")
                if not start:
                    break
            out.append(pages)
    return out


def test_a_later_page_of_a_table_partition_reads_only_what_follows_its_start_key(ddb, monkeypatch):
    """The join-inputs table's shape (number range key), paged by size as the join reads it."""
    ddb.create_table(TableName="N", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}, {"AttributeName": "i", "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"},
                                           {"AttributeName": "i", "AttributeType": "N"}])
    for i in (5, 40, 2, 11, 0, 33, 7, 100, 9, 1, 64, 3, 20, 8, 13, 4, 6, 10, 12, 30):  # 10 after 9, not after 1
        ddb.put_item(TableName="N", Item={"k": {"S": "join"}, "i": {"N": str(i)}, "x": {"S": "y" * 230_000}})
    ddb.put_item(TableName="N", Item={"k": {"S": "other"}, "i": {"N": "1"}})
    handed = []
    first_page = moto_patches._first_page
    monkeypatch.setattr(moto_patches, "_first_page", lambda *a: handed.append(first_page(*a)) or handed[-1])
    undo = [moto_patches.install_query_fix(), moto_patches.install_dynamodb_answer_fix()]
    try:
        fixed = _number_pages(ddb)
    finally:
        for u in reversed(undo):
            u()
    assert fixed == _number_pages(ddb)
    order = sorted((5, 40, 2, 11, 0, 33, 7, 100, 9, 1, 64, 3, 20, 8, 13, 4, 6, 10, 12, 30))
    by_size = fixed[0]
    assert [i for page in by_size for i in page[0]] == order and len(by_size) > 4  # 4 items of 230 KB a page
    assert [i for page in fixed[1] for i in page[0]] == order[::-1]
    # A later page is given at most a page and one more item, not the partition: first pages by
    # size (no Limit) still get the whole partition; later ones get five (4 fit in 1 MB, +1).
    later = [len(h) for h in handed if len(h) != 20]
    assert later and max(later) <= 5
