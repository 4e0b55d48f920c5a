"""A foreach: one `square` task per number, at most --max-workers at once."""

from flowplane import FlowSpec, retry, step


class ForeachFlow(FlowSpec):
    @step
    def start(self):
        self.numbers = list(range(10))
        self.next(self.square, foreach="numbers")

    @retry(times=2, minutes_between_retries=0)
    @step
    def square(self):
        self.value = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(task.value for task in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("sum of squares is %d" % self.total)


if __name__ == "__main__":
    ForeachFlow()
