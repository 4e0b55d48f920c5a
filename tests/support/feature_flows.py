"""Flows that each use one feature: run locally by that feature's tests in tests/sdk/, and
again on the embedded plane by tests/e2e/test_e2e_tutorials.py (no tests here)."""

import base64


# @batch and @environment (tests/sdk/test_batch_environment.py).
BATCH_ENVIRONMENT_FLOW = """
import os
from flowplane import FlowSpec, batch, environment, resources, step


class BatchFlow(FlowSpec):
    @environment(vars={"GREETING": "hi", "N": 3})
    @batch(cpu=2, memory=8192, image="python:3.11-slim", queue="big-queue", shared_memory=256)
    @step
    def start(self):
        self.seen = (os.environ.get("GREETING"), os.environ.get("N"))
        self.next(self.end)

    @resources(memory=16000)
    @batch(cpu=4)
    @step
    def end(self):
        self.seen = os.environ.get("GREETING")


if __name__ == "__main__":
    BatchFlow()
"""


# @card and its components (tests/sdk/test_cards.py).
# A 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")

CARD_FLOW = '''
from flowplane import FlowSpec, card, current, step
from flowplane.cards import Artifact, Image, Markdown, Table

PNG = %r


class CardFlow(FlowSpec):
    @card
    @step
    def start(self):
        self.score = 0.93
        self.label = "<script>alert('x')</script>"
        current.card.append(Markdown("# Report\\n**bold** <b>not markup</b>"))
        current.card.extend([Table([[1, "<i>a</i>"], [2, Artifact([1, 2])]], headers=["n", "v"]),
                             Image(PNG, label="dot")])
        self.next(self.middle)

    @card(type="blank", id="summary")
    @card(timeout=5)
    @step
    def middle(self):
        current.card["summary"].append(Markdown("only this"))
        current.card.append(Markdown("default card text"))
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    CardFlow()
''' % (PNG,)


# Config and config_expr (tests/sdk/test_config.py).
CONFIG_FLOW = """
import os
from flowplane import Config, FlowSpec, config_expr, environment, resources, retry, step


class CfgFlow(FlowSpec):
    cfg = Config("cfg", default="config.json", help="The model's settings.")
    extra = Config("extra", default_value={"greeting": "hi"})

    @resources(cpu=cfg.cpu, memory=config_expr("cfg.memory_gb * 1024"))
    @environment(vars={"MODE": config_expr("cfg.mode.upper()")})
    @retry(times=cfg["retries"])
    @step
    def start(self):
        self.seen = (self.cfg.cpu, self.cfg["mode"], self.extra.greeting, os.environ.get("MODE"))
        self.part = self.cfg.nested
        self.next(self.end)

    @step
    def end(self):
        try:
            self.cfg.cpu = 9
        except TypeError as e:
            self.refused = str(e)


if __name__ == "__main__":
    CfgFlow()
"""

CONFIG_VALUES = {"cpu": 2, "memory_gb": 3, "mode": "fast", "retries": 1, "nested": {"k": [1, 2]}}


# S3, run-scoped (tests/sdk/test_datatools_s3.py).
S3_FLOW = """
from flowplane import FlowSpec, S3, step


class S3Flow(FlowSpec):
    @step
    def start(self):
        with S3(run=self) as s3:
            self.url = s3.put("models/a.txt", "alpha")
            s3.put("models/b.bin", b"\\x00\\x01", content_type="application/octet-stream", metadata={"v": 2})
            s3.put_many([("many/%d" % i, str(i)) for i in range(20)])
        self.next(self.end)

    @step
    def end(self):
        with S3(run=self) as s3:
            self.text = s3.get("models/a.txt").text
            self.many = [o.text for o in s3.get_many(["many/%d" % i for i in range(20)])]
            self.listed = [(o.key, o.exists) for o in s3.list_paths()]
            info = s3.info("models/b.bin")
            self.info = (info.size, info.content_type, info.metadata)
            self.missing = s3.get("nope", return_missing=True).exists


if __name__ == "__main__":
    S3Flow()
"""


# @secrets (tests/sdk/test_secrets.py).
SECRETS_FLOW = """
import os
from flowplane import FlowSpec, secrets, step


class SecretFlow(FlowSpec):
    @secrets(sources=["flowplane-local/db", "flowplane-local/api"])
    @step
    def start(self):
        self.seen = (os.environ.get("DB_USER"), len(os.environ.get("DB_PASSWORD", "")), os.environ.get("API_PORT"))
        self.next(self.end)

    @step
    def end(self):
        self.not_here = os.environ.get("DB_PASSWORD")


if __name__ == "__main__":
    SecretFlow()
"""

SECRET_PASSWORD = "s3cr3t-value-never-stored"
