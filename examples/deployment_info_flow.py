"""A parameter whose default is computed once, when the flow is deployed.

The default is a function of the deploy context: it runs on your machine at
`run` or at `step-functions create`, never on the control plane, and every
production run then sees the same value.
"""

import json
from datetime import datetime, timezone

from flowplane import FlowSpec, JSONType, Parameter, step


def who_and_when(context):
    return json.dumps({"who": context.user_name, "when": datetime.now(timezone.utc).isoformat()})


class DeploymentInfoFlow(FlowSpec):
    info = Parameter("deployment_info", type=JSONType, default=who_and_when)

    @step
    def start(self):
        print("deployed by %s at %s" % (self.info["who"], self.info["when"]))
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    DeploymentInfoFlow()
