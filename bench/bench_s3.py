"""`S3.get_many` against a loop of `S3.get`: 1,000 small objects in the embedded AWS.

The objects are put once into a moto server on the loopback (what `flowplane
local` runs: every call a real HTTP round trip), then read back both ways, each
into a fresh S3 scope so neither reuses the other's downloads. The ratio is what
the bounded thread pool (flowplane/datatools/s3.MAX_WORKERS) buys over one
request at a time.
"""

from __future__ import annotations

import os
import tempfile

from common import BenchContext, Row, median_time

N_OBJECTS = 1000
OBJECT_BYTES = 256


def run(ctx: BenchContext) -> list[Row]:
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    from flowplane.datatools.s3 import MAX_WORKERS, S3

    # The server's request log (one line a request) would drown the rows, and cost time.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                                            "FLOWPLANE_S3_ENDPOINT_URL")}
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                          FLOWPLANE_S3_ENDPOINT_URL=endpoint)
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench-s3")
        keys = [f"obj/{i:04d}" for i in range(N_OBJECTS)]
        root = "s3://bench-s3/datatools"
        with tempfile.TemporaryDirectory() as tmp:
            with S3(s3root=root, tmproot=tmp) as s3:
                s3.put_many([(k, os.urandom(OBJECT_BYTES)) for k in keys])

            def many() -> None:
                with S3(s3root=root, tmproot=tmp) as s3:
                    assert len(s3.get_many(keys)) == N_OBJECTS

            def loop() -> None:
                with S3(s3root=root, tmproot=tmp) as s3:
                    assert len([s3.get(k) for k in keys]) == N_OBJECTS

            # One round each is already 1,000 requests; the machine is shared, so no more than asked.
            repeat = max(1, min(ctx.repeat, 3))
            t_many = median_time(many, repeat)
            t_loop = median_time(loop, repeat)
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return [
        # The server runs in this process, as `flowplane local` does: it shares the GIL with the
        # client, so the ratio understates what the same threads gain against S3's own latency.
        Row(f"get_many, {N_OBJECTS} x {OBJECT_BYTES} B (moto server, {MAX_WORKERS} threads)", t_many, "s"),
        Row(f"get in a sequential loop, {N_OBJECTS} x {OBJECT_BYTES} B", t_loop, "s"),
        Row("sequential loop / get_many", t_loop / t_many, "x", note="higher is better"),
    ]
