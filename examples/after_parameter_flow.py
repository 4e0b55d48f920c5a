"""Started when ParameterFlow's production run succeeds (`@trigger_on_finish`).

Deploy both (`python parameter_flow.py step-functions create`, then this file's),
trigger ParameterFlow, and this flow runs after it, reading the upstream run's
artifacts through `current.trigger.run`.
"""

from flowplane import FlowSpec, current, step, trigger_on_finish


@trigger_on_finish(flow="ParameterFlow")
class AfterParameterFlow(FlowSpec):
    @step
    def start(self):
        upstream = current.trigger.run if current.trigger else None
        self.upstream_alpha = upstream.data.alpha if upstream else None
        print(f"ParameterFlow ran with alpha={self.upstream_alpha}")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    AfterParameterFlow()
