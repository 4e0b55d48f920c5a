"""A flow with one parameter.

    python examples/parameter_flow.py run                 # alpha is 0.010000
    python examples/parameter_flow.py run --alpha 0.3
    python examples/parameter_flow.py step-functions create
    python examples/parameter_flow.py step-functions trigger --alpha 0.5
"""

from flowplane import FlowSpec, Parameter, step


class ParameterFlow(FlowSpec):
    """Prints its learning rate; `run.data.alpha` reads it back."""

    alpha = Parameter("alpha", help="Learning rate", default=0.01)

    @step
    def start(self):
        """Every step sees the parameter as an attribute."""
        print("alpha is %f" % self.alpha)
        self.next(self.end)

    @step
    def end(self):
        print("alpha is still %f" % self.alpha)


if __name__ == "__main__":
    ParameterFlow()
