"""`@project`: one flow deployed side by side, once per branch.

    python project_flow.py step-functions create                   # fraud.user.<you>.FraudScoreFlow
    python project_flow.py --branch exp step-functions create      # fraud.test.exp.FraudScoreFlow
    python project_flow.py --production step-functions create      # fraud.prod.FraudScoreFlow
    python project_flow.py --branch exp step-functions trigger     # runs the test.exp deployment

Each branch is its own state machine, schedule, production token and namespace;
every task sees which one it is through `current`.
"""

from flowplane import FlowSpec, Parameter, current, project, step


@project(name="fraud")
class FraudScoreFlow(FlowSpec):
    threshold = Parameter("threshold", default=0.9, help="Scores above it are flagged")

    @step
    def start(self):
        self.branch = current.branch_name
        self.deployment = current.project_flow_name
        print(f"project {current.project_name}, branch {current.branch_name}, production: {current.is_production}")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    FraudScoreFlow()
