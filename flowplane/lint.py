"""Lint a flow read from source, with Metaflow's rules, before anything runs.

Every rule is one small function registered in `RULES`; `lint` runs them all
and returns every error at once (Metaflow stops at the first), so a user fixes
a flow in one pass. Each error names the step or parameter at fault and the
line of source to look at.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Callable, Iterable, Iterator, Optional

from aws_cron_expression_validator.validator import AWSCronExpressionValidator

from .graph import SourceFlow
from .manifest import RESERVED_NAMES, ParameterSpec, StepSpec
from .parameters import ParameterError, convert, shown


@dataclass(frozen=True)
class LintError:
    """One fault: which rule, what is wrong, where (step or parameter, and line)."""

    rule: str
    message: str
    lineno: int = 0
    step: Optional[str] = None
    parameter: Optional[str] = None

    def __str__(self) -> str:
        where = f"line {self.lineno}: " if self.lineno else ""
        if self.step is not None:
            where += f"step {self.step!r}: "
        elif self.parameter is not None:
            where += f"parameter {self.parameter!r}: "
        return where + self.message


class LintFailed(Exception):
    """The flow has lint errors; `errors` holds all of them."""

    def __init__(self, errors: list[LintError], flow_name: str = "the flow"):
        self.errors = list(errors)
        self.flow_name = flow_name
        count = f"{len(self.errors)} error" + ("s" if len(self.errors) != 1 else "")
        lines = "\n".join(f"  {e}" for e in self.errors)
        super().__init__(f"{flow_name} has {count}:\n{lines}")


def _at_step(node: StepSpec, message: str, lineno: Optional[int] = None) -> LintError:
    # The rule id is stamped by `lint`, so rules need not repeat it.
    return LintError("", message, node.lineno if lineno is None else lineno, step=node.name)


def _at_tail(node: StepSpec, message: str) -> LintError:
    return _at_step(node, message, node.tail_next_lineno or node.lineno)


def _at_param(param: ParameterSpec, message: str) -> LintError:
    return LintError("", message, param.lineno, parameter=param.name)


def _names(names: Iterable[str]) -> str:
    return ", ".join(repr(n) for n in names)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "es" if noun.endswith("ch") else "s")


# --- the walk through splits and joins ------------------------------------------


@dataclass
class _Walk:
    """What Metaflow's traversal learns: the splits open at each step, per path."""

    # The open splits (outermost first) on the first path that reached each step.
    stacks: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Steps reached again with other open splits: step -> those other stacks.
    conflicts: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)
    # join -> the split it closes; split -> every join that closes it.
    closes: dict[str, str] = field(default_factory=dict)
    closers: dict[str, list[str]] = field(default_factory=dict)
    # Joins reached with no split open.
    unopened_joins: list[str] = field(default_factory=list)
    # Innermost splits still open when a path reaches end.
    open_at_end: list[str] = field(default_factory=list)


def _walk(steps: dict[str, StepSpec], merges: set[str]) -> _Walk:
    """Follow every path from start, keeping the stack of open splits.

    `merges` are steps that several steps lead to but that lack `inputs`: they
    are walked as the joins they were meant to be, so that the one missing
    argument is reported once (join-needs-inputs) rather than as a split left open.
    """
    walk = _Walk()
    if "start" not in steps:
        return walk
    # Each state (step, open splits) is expanded once: this keeps a flow of many
    # diamonds linear, where Metaflow's walk over every path is exponential.
    expanded: set[tuple[str, tuple[str, ...]]] = set()
    todo: list[tuple[str, tuple[str, ...]]] = [("start", ())]
    while todo:
        name, opened = todo.pop()
        # Back at a split still open: a loop (the cycle rule reports it). Any
        # other loop comes back to a state already expanded.
        if (name, opened) in expanded or name in opened:
            continue
        expanded.add((name, opened))
        if name not in walk.stacks:
            walk.stacks[name] = opened
        elif walk.stacks[name] != opened:
            walk.conflicts.setdefault(name, []).append(opened)
            continue  # going on would repeat the same fault further down
        node = steps[name]
        after = opened
        if node.type in ("split", "foreach"):
            after = opened + (name,)
        elif node.type == "join" or name in merges:
            if opened:
                split = opened[-1]
                walk.closes.setdefault(name, split)
                joins = walk.closers.setdefault(split, [])
                if name not in joins:
                    joins.append(name)
                after = opened[:-1]
            elif node.type == "join" and name not in walk.unopened_joins:
                walk.unopened_joins.append(name)
        elif node.type == "end" and opened and opened[-1] not in walk.open_at_end:
            walk.open_at_end.append(opened[-1])
        for out in reversed(node.out_funcs):
            if out in steps:
                todo.append((out, after))
    return walk


class _Flow:
    """What the rules look at; derived facts are computed once, when first asked for."""

    def __init__(self, source_flow: SourceFlow):
        self.source = source_flow
        self.graph = source_flow.graph
        self.steps = source_flow.graph.steps
        self.parameters = source_flow.parameters
        self._descendants: dict[str, set[str]] = {}

    def ordered(self) -> list[StepSpec]:
        return sorted(self.steps.values(), key=lambda s: s.lineno)

    @cached_property
    def walk(self) -> _Walk:
        # A merge (several steps lead to a step without inputs) is walked as the
        # join it was meant to be only when its branches agree on the open splits;
        # otherwise the walk stays as written and reports the disagreement.
        merges = {n for n, node in self.steps.items() if n != "end" and len(self.forward_in_funcs(n)) > 1}
        plain = _walk(self.steps, set())
        return _walk(self.steps, merges - set(plain.conflicts))

    @cached_property
    def after_conflict(self) -> set[str]:
        """Steps below a step reached with different open splits: what the walk
        knows about their splits depends on which path came first."""
        return set().union(*(self.descendants(n) for n in self.walk.conflicts))

    def descendants(self, name: str) -> set[str]:
        """The steps reachable from `name` (itself included only on a loop)."""
        if name not in self._descendants:
            self._descendants[name] = self._closure(self.steps[name].out_funcs, self._successors)
        return self._descendants[name]

    def forward_in_funcs(self, name: str) -> list[str]:
        """The steps leading here, without those coming back through a loop and,
        when there is a start, those it never reaches (orphans are reported as such)."""
        preds = [p for p in self.steps[name].in_funcs if p in self.reachable or "start" not in self.steps]
        if len(preds) < 2:
            return preds  # one way in cannot be a loop back and a way in at once
        return [p for p in preds if p not in self.descendants(name)]

    @cached_property
    def broken_tails(self) -> list[str]:
        """Steps (but end) with no self.next, an unreadable one, or one to an unknown step."""
        return [
            n.name
            for n in self.steps.values()
            if n.name != "end" and (not n.out_funcs or any(o not in self.steps for o in n.out_funcs))
        ]

    @cached_property
    def reachable(self) -> set[str]:
        return self._closure(["start"], self._successors)

    @cached_property
    def predecessors(self) -> dict[str, list[str]]:
        preds: dict[str, list[str]] = {n: [] for n in self.steps}
        for node in self.steps.values():
            for out in node.out_funcs:
                if out in preds and node.name not in preds[out]:
                    preds[out].append(node.name)
        return preds

    def _successors(self, name: str) -> list[str]:
        return self.steps[name].out_funcs

    def _closure(self, roots: list[str], follow: Callable[[str], list[str]]) -> set[str]:
        seen: set[str] = set()
        todo = [r for r in roots if r in self.steps]
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo.extend(m for m in follow(n) if m in self.steps)
        return seen

    def can_reach(self, targets: list[str]) -> set[str]:
        return self._closure(targets, lambda n: self.predecessors[n])


Rule = Callable[[_Flow], Iterable[LintError]]
RULES: list[tuple[str, Rule]] = []


def rule(rule_id: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        RULES.append((rule_id, fn))
        return fn

    return register


# --- what the reader found --------------------------------------------------------

_SUBJECT = re.compile(r"^(step|parameter) '([^']*)': ")


@rule("source")
def check_source_problems(flow: _Flow) -> Iterator[LintError]:
    """Bad decorator or Parameter arguments, duplicate steps: found while reading."""
    for lineno, message in flow.source.problems:
        m = _SUBJECT.match(message)
        if m is None:
            yield LintError("", message, lineno)
        else:
            kind, name = m.groups()
            yield LintError("", message[m.end() :], lineno, **{kind: name})


# --- steps --------------------------------------------------------------------------


@rule("basic-steps")
def check_basic_steps(flow: _Flow) -> Iterator[LintError]:
    for name, what in (("start", "begins"), ("end", "finishes")):
        if name not in flow.steps:
            yield LintError(
                "",
                f"the flow has no {name!r} step: every flow {what} with one (@step def {name}(self): ...)",
                flow.source.class_lineno,
            )


@rule("step-name-reserved")
def check_reserved_step_names(flow: _Flow) -> Iterator[LintError]:
    for node in flow.ordered():
        if node.name in RESERVED_NAMES:
            yield _at_step(node, f"{node.name!r} is a reserved word (it would shadow self.{node.name}); rename the step")


@rule("step-name-format")
def check_step_name_format(flow: _Flow) -> Iterator[LintError]:
    for node in flow.ordered():
        if node.name.startswith("_"):
            yield _at_step(node, "a step name cannot start with '_' (kept for Flowplane's own attributes)")
        elif re.search(r"[^a-z0-9_]", node.name):
            yield _at_step(node, "a step name may hold only lowercase ASCII letters, digits and underscores")


@rule("num-args")
def check_num_args(flow: _Flow) -> Iterator[LintError]:
    for node in flow.ordered():
        if node.num_args == 0:
            yield _at_step(node, "the step is missing its 'self' argument")
        elif node.name == "end":
            continue  # end-is-end explains what is wrong with an end taking inputs
        elif node.num_args > 2:
            yield _at_step(
                node,
                f"the step takes {node.num_args} arguments; a step takes only 'self', a join 'self' and 'inputs'",
            )
        elif node.num_args == 2 and node.name == "start":
            yield _at_step(node, "start takes no inputs: define it as def start(self)")
        elif node.num_args == 2 and node.type in ("split", "foreach"):
            yield _at_step(
                node,
                "the step is both a join (it takes inputs) and a split (it goes to several steps); "
                "add a step so that the join and the split are separate",
            )


@rule("end-is-end")
def check_end_is_end(flow: _Flow) -> Iterator[LintError]:
    end = flow.steps.get("end")
    if end is None:
        return
    if end.has_tail_next or end.out_funcs:
        yield _at_tail(end, "end is the last step: it must not call self.next(); remove the transition")
    if end.num_args > 1:
        yield _at_step(end, "end cannot be a join (it takes inputs); add a join step before end")


@rule("missing-next")
def check_missing_next(flow: _Flow) -> Iterator[LintError]:
    for node in flow.ordered():
        if node.name != "end" and not node.has_tail_next:
            yield _at_step(
                node, "the step must end with self.next(...) as its last statement, naming the step(s) that follow"
            )


@rule("invalid-next")
def check_invalid_next(flow: _Flow) -> Iterator[LintError]:
    for node in flow.ordered():
        if node.name == "end" or not (node.has_tail_next and node.invalid_tail_next):
            continue
        if not node.out_funcs:
            yield _at_tail(node, "self.next() must name the following step(s) as self.<step>, e.g. self.next(self.end)")
        elif node.type == "foreach" and len(node.out_funcs) > 1:
            yield _at_tail(
                node,
                f"a foreach goes to exactly one step, but self.next() names {len(node.out_funcs)} "
                f"({_names(node.out_funcs)})",
            )
        elif node.type != "foreach":
            yield _at_tail(
                node,
                "self.next() takes only steps (self.<step>) and foreach='<attribute>'; "
                "remove the other keyword argument(s)",
            )
        # A foreach with one step and a bad foreach= value: check_foreach_attribute.


@rule("foreach-attribute")
def check_foreach_attribute(flow: _Flow) -> Iterator[LintError]:
    for node in flow.ordered():
        if node.type != "foreach" or len(node.out_funcs) != 1:
            continue
        param = node.foreach_param
        if param is None:
            yield _at_tail(node, "foreach= must name an attribute of self as a string, e.g. foreach='items'")
        elif not param.isidentifier():
            yield _at_tail(node, f"foreach={param!r} is not an attribute name; use e.g. foreach='items'")


@rule("duplicate-next")
def check_duplicate_targets(flow: _Flow) -> Iterator[LintError]:
    for node in flow.ordered():
        twice = sorted({n for n in node.out_funcs if node.out_funcs.count(n) > 1})
        if twice:
            yield _at_tail(node, f"self.next() names {_names(twice)} more than once; each branch must be a different step")


@rule("unknown-step")
def check_unknown_targets(flow: _Flow) -> Iterator[LintError]:
    for node in flow.ordered():
        for out in node.out_funcs:
            if out not in flow.steps:
                close = difflib.get_close_matches(out, list(flow.steps), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                yield _at_tail(node, f"self.next() goes to {out!r}, which is not a step of this flow{hint}")


@rule("unreachable")
def check_reachable_from_start(flow: _Flow) -> Iterator[LintError]:
    """Orphans. While a reachable step's self.next is missing or broken, the step
    it meant to name looks orphaned: as Metaflow (which checks transitions first),
    report orphans only once every transition on the way is readable."""
    if "start" not in flow.steps or any(n in flow.reachable for n in flow.broken_tails):
        return
    for node in flow.ordered():
        if node.name not in flow.reachable:
            yield _at_step(
                node,
                f"the step cannot be reached from start; add self.next(self.{node.name}) to a step, "
                "or remove it",
            )


@rule("reaches-end")
def check_reaches_end(flow: _Flow) -> Iterator[LintError]:
    """A loop with no way out, reported once, at its first step. The steps that
    lead into it, and those stuck behind a broken self.next (reported itself),
    are not repeated."""
    if "end" not in flow.steps:
        return
    fine = flow.can_reach(["end"]) | flow.can_reach(flow.broken_tails)
    reported: set[str] = set()
    for node in flow.ordered():
        name = node.name
        if name in fine or name in reported or name not in flow.descendants(name):
            continue
        loop = [m.name for m in flow.ordered() if m.name in flow.descendants(name) and name in flow.descendants(m.name)]
        reported.update(loop)
        yield _at_step(node, f"no path from this step reaches end: the loop through {_names(loop)} never leaves")


@rule("cycle")
def check_acyclic(flow: _Flow) -> Iterator[LintError]:
    # Depth-first with an explicit stack: a long chain of steps must not meet
    # Python's recursion limit.
    reported: set[frozenset[str]] = set()
    done: set[str] = set()
    for root in flow.ordered():
        if root.name in done:
            continue
        path = [root.name]
        pending = [iter(root.out_funcs)]
        while pending:
            out = next(pending[-1], None)
            if out is None:
                done.add(path.pop())
                pending.pop()
            elif out in path:
                loop = path[path.index(out) :] + [out]
                if frozenset(loop) not in reported:
                    reported.add(frozenset(loop))
                    yield _at_tail(
                        flow.steps[path[-1]],
                        f"self.next() makes a loop: {' -> '.join(loop)}; a flow cannot go back to a step",
                    )
            elif out in flow.steps and out not in done:
                path.append(out)
                pending.append(iter(flow.steps[out].out_funcs))


@rule("join-needs-inputs")
def check_merge_takes_inputs(flow: _Flow) -> Iterator[LintError]:
    for node in flow.ordered():
        # end is never a join: check_split_join_balance reports the split it leaves open.
        # A loop back here is the cycle rule's to report, not a join.
        preds = flow.forward_in_funcs(node.name)
        if node.name != "end" and node.type != "join" and len(preds) > 1:
            yield _at_step(
                node,
                f"{len(preds)} steps lead here ({_names(preds)}), so this step joins them: "
                f"define it as def {node.name}(self, inputs)",
            )


@rule("join-without-split")
def check_join_has_split(flow: _Flow) -> Iterator[LintError]:
    for name in flow.walk.unopened_joins:
        if name in flow.after_conflict:
            continue
        yield _at_step(
            flow.steps[name],
            "the step takes inputs (a join) but no split comes before it; a step that is not a join "
            "takes only 'self'",
        )


@rule("join-arity")
def check_join_arity(flow: _Flow) -> Iterator[LintError]:
    for join, split in flow.walk.closes.items():
        node, split_node = flow.steps[join], flow.steps[split]
        if node.type != "join":
            continue  # a merge without inputs: join-needs-inputs says so
        expected = 1 if split_node.type == "foreach" else len(split_node.out_funcs)
        if len(node.in_funcs) != expected:
            kind = "foreach" if split_node.type == "foreach" else "split"
            got = len(node.in_funcs)
            yield _at_step(
                node,
                f"this join closes the {kind} at step {split!r} (line {split_node.lineno}), which has "
                f"{_count(expected, 'branch')}, but {_count(got, 'step')} {'leads' if got == 1 else 'lead'} "
                f"here ({_names(node.in_funcs)})",
            )


@rule("split-join-balance")
def check_split_join_balance(flow: _Flow) -> Iterator[LintError]:
    walk = flow.walk
    for split in walk.open_at_end if "end" not in flow.after_conflict else ():
        yield _at_step(
            flow.steps[split],
            "this split is never joined: a path from it reaches end; add a join step before end",
        )
    for split, joins in walk.closers.items():
        if len(joins) > 1:
            yield _at_step(
                flow.steps[split],
                f"the branches of this split end at different joins ({_names(joins)}); "
                "all branches of a split must meet at one join",
            )
    for name, others in walk.conflicts.items():
        node = flow.steps[name]
        seen = [walk.stacks[name], *others]
        where = " and ".join(_describe_open(s) for s in dict.fromkeys(seen))
        if node.type == "join":
            message = f"this join gathers steps from unrelated splits ({where}); a join closes one split"
        else:
            message = (
                f"the step is reached {where}; a step belongs to one branch, so join the branches "
                "before they share a step"
            )
        yield _at_step(node, message)


def _describe_open(stack: tuple[str, ...]) -> str:
    return f"inside the split at {stack[-1]!r}" if stack else "outside any split"


@rule("split-to-join")
def check_split_has_children(flow: _Flow) -> Iterator[LintError]:
    for node in flow.ordered():
        if node.type not in ("split", "foreach"):
            continue
        joins = [o for o in node.out_funcs if o in flow.steps and flow.steps[o].type == "join"]
        if joins:
            yield _at_tail(
                node,
                f"the {node.type} goes straight to the join {joins[0]!r}; put at least one step in each branch",
            )


# --- parameters ---------------------------------------------------------------------


def _folded(name: str) -> str:
    # `--Alpha` and `--alpha`, `--learning-rate` and `--learning_rate` are one option.
    return name.lower().replace("-", "_")


@rule("parameter-unique")
def check_parameter_names_unique(flow: _Flow) -> Iterator[LintError]:
    first: dict[str, ParameterSpec] = {}
    for p in flow.parameters:
        other = first.setdefault(_folded(p.name), p)
        if other is not p:
            yield _at_param(
                p,
                f"clashes with parameter {other.name!r} (line {other.lineno}); parameter names are "
                "case-insensitive and '-' equals '_'",
            )


@rule("parameter-name-format")
def check_parameter_name_format(flow: _Flow) -> Iterator[LintError]:
    for p in flow.parameters:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", p.name):
            yield _at_param(p, "a parameter name may hold only letters, digits, '-' and '_', as a command-line option")


@rule("parameter-reserved")
def check_parameter_reserved(flow: _Flow) -> Iterator[LintError]:
    for p in flow.parameters:
        if _folded(p.name) in RESERVED_NAMES:
            yield _at_param(p, "the name is a reserved word; choose another name")
        elif p.attribute in RESERVED_NAMES:
            yield _at_param(p, f"its attribute {p.attribute!r} is a reserved word (it would shadow self.{p.attribute})")


@rule("parameter-step-clash")
def check_parameter_step_clash(flow: _Flow) -> Iterator[LintError]:
    for p in flow.parameters:
        for what, value in (("name", _folded(p.name)), ("attribute", p.attribute)):
            if value in flow.steps:
                yield _at_param(p, f"its {what} {value!r} is also a step's name (line {flow.steps[value].lineno})")
                break


@rule("parameter-attribute-clash")
def check_parameter_attributes(flow: _Flow) -> Iterator[LintError]:
    by_attr: dict[str, ParameterSpec] = {}
    for p in flow.parameters:
        other = by_attr.setdefault(p.attribute, p)
        if other is not p:
            yield _at_param(
                p,
                f"attribute {p.attribute!r} already holds parameter {other.name!r} (line {other.lineno}); "
                "the later assignment silently replaces it",
            )
    for p in flow.parameters:
        holder = by_attr.get(p.name)
        if holder is not None and holder is not p:
            yield _at_param(
                p,
                f"the name is also the attribute of parameter {holder.name!r} (line {holder.lineno}); "
                f"self.{p.name} and the artifact {p.name!r} would disagree",
            )


@rule("parameter-default-type")
def check_parameter_default_type(flow: _Flow) -> Iterator[LintError]:
    for p in flow.parameters:
        if p.has_default and not p.deploy_time:
            try:
                convert(p.type, p.default, p.name)
            except ParameterError:
                yield _at_param(p, f"the default {shown(p.default)} is not a valid {p.type}")


@rule("parameter-required-schedule")
def check_required_parameters_scheduled(flow: _Flow) -> Iterator[LintError]:
    if flow.graph.schedule is None:
        return
    for p in flow.parameters:
        if p.required and not p.has_default:
            yield _at_param(
                p,
                "is required and has no default, but the flow has @schedule: a scheduled run "
                "could not supply it; give it a default",
            )


# --- the flow ------------------------------------------------------------------------


@rule("schedule-cron")
def check_schedule_cron(flow: _Flow) -> Iterator[LintError]:
    schedule = flow.graph.schedule
    if schedule is None or not schedule.cron:
        return
    try:
        AWSCronExpressionValidator.validate(schedule.cron.strip())
    except ValueError as e:
        yield LintError(
            "",
            f"@schedule(cron={schedule.cron!r}) is not an EventBridge cron expression: {e} "
            "(six fields: minutes hours day-of-month month day-of-week year, e.g. '0 10 * * ? *')",
            flow.source.class_lineno,
        )


@rule("schedule-timezone")
def check_schedule_timezone(flow: _Flow) -> Iterator[LintError]:
    schedule = flow.graph.schedule
    if schedule is None or schedule.timezone is None:
        return
    from .schedule_times import ScheduleTimeError, check_zone

    try:
        check_zone(schedule.timezone)
    except ScheduleTimeError as e:
        yield LintError("", f"@schedule(timezone={schedule.timezone!r}): {e}", schedule.lineno or flow.source.class_lineno)


@rule("trigger-parameters")
def check_trigger_parameters(flow: _Flow) -> Iterator[LintError]:
    trigger = flow.graph.trigger
    if trigger is None:
        return
    declared = {p.name: p for p in flow.parameters}
    for event in trigger.events:
        for name, field in event.parameters.items():
            param = declared.get(name)
            if param is None:
                yield LintError("", f"@trigger: event {event.name!r} maps payload field {field!r} to "
                                f"{name!r}, which is not a parameter of the flow "
                                f"(parameters: {_names(declared) or 'none'})", trigger.lineno)
            elif param.type == "include":
                yield LintError("", f"@trigger: event {event.name!r} maps a payload field to {name!r}, an "
                                "IncludeFile: its value is a file read where the run is started, which an "
                                "event cannot carry", trigger.lineno)


@rule("parameter-required-trigger")
def check_required_parameters_triggered(flow: _Flow) -> Iterator[LintError]:
    graph = flow.graph
    if graph.trigger is None and graph.trigger_on_finish is None:
        return
    for p in flow.parameters:
        if not p.required or p.has_default:
            continue
        # A triggered run takes its parameters from the events' payloads, and only from them.
        unmapped = [e.name for e in graph.trigger.events if p.name not in e.parameters] if graph.trigger else []
        if graph.trigger_on_finish is not None or unmapped:
            source = f"event {unmapped[0]!r} does not map it" if unmapped else "@trigger_on_finish carries no payload"
            yield _at_param(p, f"is required and has no default, but the flow is triggered and {source}; "
                               "give it a default or map it from every event")


@rule("trigger-on-own-finish")
def check_trigger_on_own_finish(flow: _Flow) -> Iterator[LintError]:
    finish = flow.graph.trigger_on_finish
    # A project-qualified name may be another branch of this flow: that is no loop.
    if finish is not None and any(f.name == flow.graph.flow_name and not f.project for f in finish.flows):
        yield LintError("", f"@trigger_on_finish names {flow.graph.flow_name} itself: each run would start "
                        "the next, forever", finish.lineno)


@rule("trigger-on-finish-project")
def check_trigger_on_finish_project(flow: _Flow) -> Iterator[LintError]:
    finish = flow.graph.trigger_on_finish
    if finish is None or flow.graph.project is not None:
        return
    try:
        finish.within(None)
    except ValueError as e:
        yield LintError("", str(e), finish.lineno)


# --- entry points ----------------------------------------------------------------------


def lint(source_flow: SourceFlow) -> list[LintError]:
    """Every error in the flow, in source order; empty when the flow is fine."""
    flow = _Flow(source_flow)
    errors: list[LintError] = []
    for rule_id, check_rule in RULES:
        for error in check_rule(flow):
            stamped = replace(error, rule=rule_id)
            if stamped not in errors:
                errors.append(stamped)
    order = {rule_id: i for i, (rule_id, _) in enumerate(RULES)}
    return sorted(errors, key=lambda e: (e.lineno, order[e.rule]))


def check(source_flow: SourceFlow) -> None:
    """Raise LintFailed with every error, or return quietly when the flow is fine."""
    errors = lint(source_flow)
    if errors:
        raise LintFailed(errors, source_flow.graph.flow_name)
