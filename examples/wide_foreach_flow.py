"""A wide foreach: one small task per item, as a hyperparameter sweep has.

    python wide_foreach_flow.py step-functions create --max-workers 100
    python wide_foreach_flow.py step-functions trigger --width 1000

On Step Functions the foreach is a Distributed Map: each item is a child
execution, so the width is bounded by neither the run's 25,000-event history nor
an inline Map's 40 iterations at once (README, "Wide foreach").
"""

from flowplane import FlowSpec, Parameter, step


class WideForeachFlow(FlowSpec):
    width = Parameter("width", help="How many items", default=1000)

    @step
    def start(self):
        self.items = list(range(self.width))
        self.next(self.score, foreach="items")

    @step
    def score(self):
        self.score = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.scores = [i.score for i in inputs]
        # Metaflow hands a join its inputs in foreach order.
        assert self.scores == [2 * i for i in range(len(self.scores))]
        self.best = max(self.scores)
        self.next(self.end)

    @step
    def end(self):
        print("%d items, best score %d" % (len(self.scores), self.best))


if __name__ == "__main__":
    WideForeachFlow()
