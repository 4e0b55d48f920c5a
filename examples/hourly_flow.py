"""A flow that runs at the top of every hour once deployed (cron(0 * * * ? *), UTC)."""

from datetime import datetime, timezone

from flowplane import FlowSpec, schedule, step


@schedule(hourly=True)
class HourlyFlow(FlowSpec):
    @step
    def start(self):
        self.started_at = datetime.now(timezone.utc).isoformat()
        print("started at %s" % self.started_at)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    HourlyFlow()
