"""A static split: two branches run in parallel and a join adds them up."""

from flowplane import FlowSpec, step


class BranchFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.next(self.add_one, self.add_two)

    @step
    def add_one(self):
        self.x += 1
        self.next(self.join)

    @step
    def add_two(self):
        self.x += 2
        self.next(self.join)

    @step
    def join(self, inputs):
        """`inputs.add_one.x` names a branch; iterating goes over all of them."""
        self.total = sum(branch.x for branch in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("total is %d" % self.total)


if __name__ == "__main__":
    BranchFlow()
