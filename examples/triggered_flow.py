"""Started by an event: `flowplane event publish data_updated --payload '{"table": "sales", "rows": 120}'`.

Deployed with `python triggered_flow.py step-functions create`, it runs whenever
`data_updated` is published; the payload's fields set the parameters named in
the mapping (a missing field keeps the default).
"""

from flowplane import FlowSpec, Parameter, current, step, trigger


@trigger(event={"name": "data_updated", "parameters": {"table": "table", "rows": "rows"}})
class TriggeredFlow(FlowSpec):
    table = Parameter("table", default="all", help="which table changed")
    rows = Parameter("rows", default=0, help="how many rows arrived")

    @step
    def start(self):
        event = current.trigger.event if current.trigger else None
        print(f"{self.rows} new rows in {self.table}" + (f" (event {event.id})" if event else ""))
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    TriggeredFlow()
