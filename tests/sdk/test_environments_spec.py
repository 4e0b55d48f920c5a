"""@pypi, @pypi_base, @conda, @conda_base: Metaflow's signatures and merge rules, what is
refused and how, the locks in the manifest, and `--environment` deciding whether a run may
use them (no package index involved: resolving is in tests/e2e/test_e2e_environments.py)."""

from __future__ import annotations

import textwrap

import pytest
from pydantic import ValidationError

from flowplane import FlowSpec, conda, conda_base, pypi, pypi_base, step
from flowplane.decorators import DecoratorArgumentError
from flowplane.environments.resolve import ResolutionError, lock_flow, requests_of
from flowplane.graph import read_source_flow
from flowplane.manifest import Environments, LockedEnvironment, Manifest, requirement_line

LOCK = "tomli-w==1.0.0 \\\n    --hash=sha256:" + "0" * 64 + "\n"


def _graph(body: str, head: str = ""):
    source = (
        "from flowplane import FlowSpec, step, pypi, pypi_base, conda, conda_base\n"
        f"{head}\nclass F(FlowSpec):\n{textwrap.indent(textwrap.dedent(body), '    ')}"
    )
    flow = read_source_flow(source)
    return flow.graph, flow.problems


def test_versions_read_as_metaflow_reads_them():
    assert requirement_line("pandas", "2.2.2") == "pandas==2.2.2"
    assert requirement_line("pandas", ">=2,<3") == "pandas>=2,<3"
    assert requirement_line("pandas", "") == "pandas"
    assert requirement_line("requests[socks]", "~=2.31") == "requests[socks]~=2.31"


@pytest.mark.parametrize("kwargs, says", [
    ({"packages": {"bad name": "1"}}, "'bad name' is not a package name"),
    ({"packages": {"pandas": "latest"}}, "is not a version ('2.2.2') or version specifiers"),
    ({"packages": {"pandas": "@ https://x/p.whl"}}, "URLs and environment markers are not supported"),
    ({"packages": {"python": "3.11"}}, "give the Python version with python="),
    ({"packages": {"pandas": ["2"]}}, "the version must be a string"),
    ({"python": ">=3.8,<3.9"}, "ranges are not supported"),
    ({"python": "2.7"}, "give a Python 3 version"),
    ({"packages": ["pandas"]}, "packages must be a dict"),
])
def test_bad_arguments_fail_where_the_decorator_is_written(kwargs, says):
    with pytest.raises(DecoratorArgumentError, match="@pypi") as e:
        pypi(**kwargs)
    assert says in str(e.value)


def test_conda_channels_are_refused_saying_how_conda_is_resolved():
    with pytest.raises(DecoratorArgumentError) as e:
        conda(libraries={"conda-forge::pytorch": "2.0"})
    assert "conda channels (channel::package) are not supported" in str(e.value)
    with pytest.raises(DecoratorArgumentError):
        conda_base(packages={"pytorch::pytorch": ""})


def test_the_source_is_read_with_the_same_rules():
    graph, problems = _graph("""
        @pypi(packages={"pandas": "2.2.2"}, python="3.11")
        @step
        def start(self):
            self.next(self.end)

        @pypi(packages={"bad name": "1"})
        @step
        def end(self):
            pass
    """, head='@pypi_base(packages={"numpy": "2.0.0"})')
    assert graph.pypi_base.packages == {"numpy": "2.0.0"}
    assert graph["start"].decorator("pypi").packages == {"pandas": "2.2.2"}
    assert [m for _, m in problems] == ["step 'end': @pypi: packages: 'bad name' is not a package name"]


def test_a_step_adds_to_the_base_and_wins_over_it():
    graph, _ = _graph("""
        @pypi(packages={"pandas": "2.2.2", "numpy": "2.1.0"})
        @step
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            pass
    """, head='@pypi_base(packages={"numpy": "2.0.0", "scipy": ""}, python="3.12")')
    start, end = graph.dependencies_of("start"), graph.dependencies_of("end")
    assert start.packages == {"numpy": "2.1.0", "scipy": "", "pandas": "2.2.2"}
    assert start.python == end.python == "3.12"
    assert end.packages == {"numpy": "2.0.0", "scipy": ""}
    assert start.requirement_lines() == ["numpy==2.1.0", "pandas==2.2.2", "scipy"]


def test_disabled_runs_the_step_in_the_tasks_own_environment():
    graph, _ = _graph("""
        @pypi(disabled=True)
        @step
        def start(self):
            self.next(self.mid)

        @pypi(disabled=False, packages={"a": "1"})
        @step
        def mid(self):
            self.next(self.end)

        @step
        def end(self):
            pass
    """, head='@pypi_base(packages={"b": "1"}, disabled=True)')
    assert graph.dependencies_of("start", isolated=True) is None
    assert graph.dependencies_of("end", isolated=True) is None  # the base's disabled applies
    assert graph.dependencies_of("mid").packages == {"b": "1", "a": "1"}


def test_isolated_steps_without_decorators_get_an_environment_of_their_own():
    graph, _ = _graph("""
        @step
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            pass
    """)
    assert graph.dependencies_of("start") is None
    assert graph.dependencies_of("start", isolated=True).packages == {}


def test_conda_merges_libraries_under_packages_and_pypi_python_wins():
    graph, _ = _graph("""
        @conda(libraries={"a": "1", "b": "1"}, packages={"b": "2"}, python="3.10")
        @step
        def start(self):
            self.next(self.end)

        @pypi(python="3.12")
        @step
        def end(self):
            pass
    """, head='@conda_base(python="3.11")')
    assert graph.dependencies_of("start").packages == {"a": "1", "b": "2"}
    assert graph.dependencies_of("start").kind == "conda"
    assert graph.dependencies_of("end").python == "3.12"


def test_mixing_pypi_and_conda_packages_in_a_step_is_refused():
    graph, _ = _graph("""
        @pypi(packages={"a": "1"})
        @step
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            pass
    """, head='@conda_base(libraries={"b": "1"})')
    with pytest.raises(ResolutionError, match="mixing PyPI packages .* and Conda packages .* is not supported"):
        requests_of(graph, isolated=True)


def test_decorators_need_the_environment_option_as_in_metaflow():
    graph, _ = _graph("""
        @step
        def start(self):
            self.next(self.end)

        @conda(libraries={"a": "1"})
        @step
        def end(self):
            pass
    """)
    with pytest.raises(ResolutionError) as e:
        lock_flow(graph, "local")
    assert str(e.value) == "@conda (step 'end') requires --environment=pypi or --environment=conda"
    plain, _ = _graph("""
        @step
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            pass
    """)
    assert lock_flow(plain, "local") == Environments()


def _manifest(graph, environments):
    return Manifest(flowplane_version="0.1.0", flow_name="F", flow_file="f.py", graph=graph, environments=environments)


def test_the_manifest_holds_each_lock_once_named_by_its_hash():
    graph, _ = _graph("""
        @pypi(packages={"tomli-w": "1.0.0"}, python="3.11")
        @step
        def start(self):
            self.next(self.end)

        @pypi(packages={"tomli-w": "1.0.0"})
        @step
        def end(self):
            pass
    """)
    env = LockedEnvironment(python="3.11", lock=LOCK)
    manifest = _manifest(graph, Environments(locks={env.id: env}, steps={"start": env.id, "end": env.id}))
    again = Manifest.model_validate_json(manifest.model_dump_json())
    assert again.environments.for_step("end") == (env.id, env)
    assert len(env.id) == 64 and env.id != LockedEnvironment(python="3.12", lock=LOCK).id


@pytest.mark.parametrize("environments, says", [
    (lambda env: Environments(), "step 'start' has @pypi but no locked environment"),
    (lambda env: {"locks": {"0" * 64: env.model_dump()}, "steps": {}}, "is not the sha256 of its lock"),
    (lambda env: {"locks": {}, "steps": {"start": env.id}}, "which has no lock"),
    (lambda env: Environments(locks={env.id: env}, steps={"start": env.id, "nope": env.id}), "'nope' is not a step"),
])
def test_a_manifest_whose_locks_do_not_fit_its_graph_is_refused(environments, says):
    graph, _ = _graph("""
        @pypi(packages={"tomli-w": "1.0.0"})
        @step
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            pass
    """)
    env = LockedEnvironment(python="3.11", lock=LOCK)
    with pytest.raises(ValidationError, match=says):
        _manifest(graph, environments(env))


def test_a_lock_for_another_python_than_asked_is_refused():
    graph, _ = _graph("""
        @pypi(python="3.12")
        @step
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            pass
    """)
    env = LockedEnvironment(python="3.11", lock=LOCK)
    with pytest.raises(ValidationError, match="asks for Python 3.12, its lock is for 3.11"):
        _manifest(graph, Environments(locks={env.id: env}, steps={"start": env.id}))


def test_the_decorators_are_importable_as_metaflows():
    @pypi_base(packages={"a": "1"})
    class Flow(FlowSpec):
        @pypi(packages={"b": "2"}, python="3.11", disabled=False)
        @step
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            pass

    assert Flow._flowplane_pypi_base.packages == {"a": "1"}
    assert Flow.start.decorators[0].packages == {"b": "2"}
