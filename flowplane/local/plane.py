"""The embedded control plane: the AWS stack of `flowplane`, on this machine.

    with LocalPlane(PlaneConfig(state_dir=...)) as plane:
        plane.url            # the control plane's HTTP API (FLOWPLANE_API_URL)
        plane.endpoint       # the embedded AWS (moto in server mode)

What runs, all in this process:

- moto in server mode on 127.0.0.1 (a free port), Step Functions executing
  state machines, with the fixes of `moto_patches` and Batch jobs run by
  `LocalBatch` as local processes (at most `vcpus` at once);
- the stack's resources, created at start: the bucket and tables
  (chalicelib.bootstrap, as the tests do), the Batch compute environment, job
  queue and job definition (`python -m flowplane task` with this interpreter),
  the Step Functions role, and one rule per event handler of the app;
- the Chalice app (app.py) served on 127.0.0.1 by Chalice's own local server,
  with the `local` stage's environment from .chalice/config.json pointed at
  moto (AWS_ENDPOINT_URL): nothing in chalicelib/ knows it is local;
- the loop that does what AWS does and moto does not: execution status events
  (`ExecutionWatcher`) and schedule rules firing (`Scheduler`);
- the state folder (`StateStore`): loaded into moto at start, then every change
  journaled as it is made, so a `kill -9` loses nothing acknowledged.

While a plane runs, this process's environment points boto3 at moto (as
`chalice local` sets the stage's variables process-wide); `stop` puts back
everything it changed: environment, moto's configuration and classes, the
app's class. One plane per process at a time; one plane per state folder
(a lock), whose URL is in `<state folder>/plane.json` while it runs.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import gc
import json
import logging
import os
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from ..datastore.records import production_run_id
from .batch import LocalBatch
from .events import EventRouter, ExecutionWatcher, batch_job_event
from .lambda_logs import LambdaOutput
from .moto_patches import (
    Undo,
    install_batch_sync_fix,
    install_distributed_map_failures,
    install_dynamodb_answer_fix,
    install_dynamodb_serializer_fix,
    install_early_stop_fix,
    install_in_process_sync_poll,
    install_events_fixes,
    install_jsonpath_cache,
    install_lambda_targets,
    install_module_list_cache,
    install_query_fix,
    install_request_id_fix,
    install_sqs_attributes_fix,
    install_second_execution_fix,
    install_shared_botocore_loader,
    install_transact_fix,
)
from .journal import StateCorrupt
from .location import LOCK_FILE, STATE_DIR_ENV, URL_FILE, default_state_dir, read_url_file  # noqa: F401 (re-exported)
from .persist import Counts, StateStore
from .scheduler import Clock, Scheduler, SystemClock
from .transport import install_in_process_transport

log = logging.getLogger("flowplane.local")

MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "batch": {"use_docker": True}}
STOPPED_CAUSE = "the local control plane stopped while the run was running"
# Loggers too chatty for a terminal: every request, every failed state of every execution.
QUIET_LOGGERS = ("werkzeug", "moto", "botocore", "urllib3")


def default_project_dir() -> Path:
    """Where app.py and .chalice/ are: the checkout this flowplane comes from."""
    here = Path(__file__).resolve().parents[2]
    return Path(os.environ.get("FLOWPLANE_CONTROL_PLANE_DIR") or here)


class PlaneError(RuntimeError):
    """The embedded control plane cannot start; the message says why and what to do."""


@dataclass
class PlaneConfig:
    state_dir: Path = field(default_factory=default_state_dir)
    host: str = "127.0.0.1"
    port: int = 0  # the control plane's port (0: a free one); moto always takes a free one
    vcpus: int = field(default_factory=lambda: os.cpu_count() or 2)
    clock: Clock = field(default_factory=SystemClock)
    poll_seconds: float = 0.25  # execution status changes
    schedule_seconds: Optional[float] = 1.0  # None: schedules fire only on `plane.scheduler.tick()`
    persist: bool = True  # False: start empty, keep nothing
    project_dir: Path = field(default_factory=default_project_dir)
    stage: str = "local"
    progress: Optional[Callable[[str], None]] = None
    # Called with each execution status change reported (a DescribeExecution answer).
    on_execution: Optional[Callable[[dict[str, Any]], None]] = None


class _Environment:
    """Changes to os.environ, each undone by `restore`."""

    def __init__(self) -> None:
        self._saved: dict[str, Optional[str]] = {}

    def set(self, values: dict[str, Optional[str]]) -> None:
        for key, value in values.items():
            if key not in self._saved:
                self._saved[key] = os.environ.get(key)
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def restore(self) -> None:
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved.clear()


class LocalPlane:
    def __init__(self, config: Optional[PlaneConfig] = None) -> None:
        self.config = config or PlaneConfig()
        self.url = ""
        self.endpoint = ""
        self.started_at = 0.0
        self.restored = Counts()
        self._undo: list[Undo] = []
        self._env = _Environment()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock_fd: Optional[int] = None
        self._running = False
        self.store = StateStore(self.config.state_dir)
        # One invocation at a time, API requests included. On AWS each function runs in its
        # own containers, one event per container at once; here they share one process, and
        # code written for Lambda (module-level clients, Powertools' lazily made Logger) is
        # not made for threads.
        self._lambda_lock = threading.RLock()
        self._lambda_pool: Any = None  # invokes handlers for rules that target them (_deliver_to_function)
        self._deliveries = 0  # of those, submitted and not yet done (settle waits for them)
        self._deliveries_lock = threading.Lock()

    # --- context manager -------------------------------------------------------------

    def __enter__(self) -> "LocalPlane":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- start -----------------------------------------------------------------------

    def start(self) -> "LocalPlane":
        if self._running:
            return self
        t0 = time.perf_counter()
        # The history restored at start is millions of long-lived objects: with the collector on,
        # each allocation-triggered pass walks them all again (it made every step of a start with
        # 1,000 runs twice as slow), and later passes would too. Off while starting, then frozen:
        # out of the collector's sight for good (freed by reference counting as ever).
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._start()
            gc.freeze()
        except BaseException:
            self._teardown()
            raise
        finally:
            if collecting:
                gc.enable()
        self._running = True
        self.started_at = time.time()
        self._say(f"control plane ready at {self.url} ({time.perf_counter() - t0:.1f} s)")
        return self

    def _start(self) -> None:
        cfg = self.config
        project = Path(cfg.project_dir)
        if not (project / "app.py").exists() or not (project / ".chalice" / "config.json").exists():
            raise PlaneError(
                f"the embedded control plane needs the control plane's sources (app.py, chalicelib/, "
                f".chalice/config.json); none in {project}: set FLOWPLANE_CONTROL_PLANE_DIR to the checkout"
            )
        if str(project) not in sys.path:
            # app.py and chalicelib/ import from the project folder, as `chalice local` runs them.
            sys.path.insert(0, str(project))
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        if cfg.persist:
            # Read (and migrate) before anything starts: damaged state stops us with nothing changed.
            try:
                self.store.load()
            except StateCorrupt as e:
                raise PlaneError(str(e)) from None
        self._quiet_loggers()
        # Said by Chalice's local server at every request to an IAM-authorized route; the
        # local stage trusts the manifest's user by design (chalicelib/identity.py).
        warnings.filterwarnings("ignore", message="IAMAuthorizer is not a supported in local mode")

        self._say("starting the embedded AWS (moto)")
        self._undo.append(install_shared_botocore_loader())  # before moto's imports make their sessions
        from moto.server import ThreadedMotoServer

        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._moto.start()
        self._undo.append(self._moto.stop)
        port = self._moto.get_host_and_port()[1]
        self.endpoint = f"http://127.0.0.1:{port}"
        # Before any session is made: the plane's own calls skip the socket (transport.py).
        self._undo.append(install_in_process_transport(self._moto._server.app, port))
        self._configure_moto()

        chalice_config, stage_env = self._stage(project)
        # On AWS the stack names the bus tasks report to (their events carry the artifact
        # index the recorder files); here it is the embedded account's default bus.
        stage_env.setdefault("FLOWPLANE_EVENT_BUS", "default")
        self.region = stage_env.get("FLOWPLANE_REGION") or "us-east-1"
        self.account = stage_env.get("FLOWPLANE_ACCOUNT") or "123456789012"
        self._env.set(
            {
                **stage_env,
                "AWS_ENDPOINT_URL": self.endpoint,
                "FLOWPLANE_S3_ENDPOINT_URL": self.endpoint,
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_SESSION_TOKEN": None,
                "AWS_SECURITY_TOKEN": None,
                "AWS_PROFILE": None,
                "AWS_DEFAULT_REGION": self.region,
                "AWS_REGION": self.region,
                "AWS_EC2_METADATA_DISABLED": "true",
                # moto's Step Functions interpreter calls services at localhost:$MOTO_PORT.
                "MOTO_PORT": str(port),
            }
        )
        self._undo.append(self._env.restore)
        from moto.logs.models import logs_backends

        self.lambda_output = LambdaOutput(lambda: logs_backends[self.account][self.region])
        self._undo.append(self.lambda_output.install())
        import boto3

        self.session = boto3.session.Session(
            aws_access_key_id="local", aws_secret_access_key="local", region_name=self.region
        )

        self.batch = LocalBatch(
            vcpus=cfg.vcpus,
            endpoint=self.endpoint,
            region=self.region,
            work_dir=str(self._jobs_dir()),
            emit=lambda detail, arn: self.router.put([batch_job_event(detail, arn)]),
        )
        self._undo.append(self.batch.install())
        self._undo.append(self.batch.close)

        self._say("creating the stack: bucket, tables, Batch queue, roles")
        self._create_stack(chalice_config)
        if cfg.persist:
            self.restored = self.store.restore(self.session, self.account, self.region)

        app = self._load_app(chalice_config)
        prefix = f"{app.app_name}-{cfg.stage}-"
        self.router = EventRouter(self.session, self.invoke, prefix)
        self._own_rules = self._route_handlers(app, prefix)
        self.router.start()
        self._undo.append(lambda: self.router.stop(drain_seconds=5.0))

        self.watcher = ExecutionWatcher(
            self.session.client("stepfunctions"), self.router.put, on_status=self._on_status, statuses=self._statuses
        )
        for arn, statuses in self.restored.reported.items():
            self.watcher.mark_emitted(arn, statuses)
        self.scheduler = Scheduler(
            events_client=self.session.client("events"),
            invoke=self.invoke,
            function_prefix=prefix,
            region=self.region,
            account=self.account,
            clock=cfg.clock,
            scheduler_client=self.session.client("scheduler"),
        )
        if cfg.persist:
            self._undo.append(self.store.open_journal(lambda: self._own_rules))
        self._serve(app, chalice_config)
        self._loop = threading.Thread(target=self._background, daemon=True, name="flowplane-local-loop")
        self._loop.start()
        self._write_url_file()

    def _say(self, message: str) -> None:
        log.info(message)
        if self.config.progress is not None:
            self.config.progress(message)

    def _take_lock(self) -> None:
        path = self.config.state_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            running = read_url_file(self.config.state_dir)
            where = f" at {running['url']} (pid {running['pid']})" if running else ""
            raise PlaneError(
                f"another embedded control plane runs on {self.config.state_dir}{where}; "
                "use it (FLOWPLANE_API_URL) or give this one another --state-dir"
            ) from None
        self._lock_fd = fd

        def release() -> None:
            (self.config.state_dir / URL_FILE).unlink(missing_ok=True)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

        self._undo.append(release)

    def _quiet_loggers(self) -> None:
        levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.CRITICAL if name == "moto" else logging.WARNING)

        def restore() -> None:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)

        self._undo.append(restore)

    def _configure_moto(self) -> None:
        import urllib.request

        from moto.core.config import default_user_config

        saved = copy.deepcopy(default_user_config)

        def post(path: str, body: Optional[dict] = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            request = urllib.request.Request(self.endpoint + path, data=data, method="POST")
            with urllib.request.urlopen(request, timeout=30) as r:
                r.read()

        # A fresh world: moto's backends are process-wide and outlive a previous plane.
        post("/moto-api/reset")
        post("/moto-api/config", MOTO_CONFIG)

        def restore() -> None:
            default_user_config.clear()
            default_user_config.update(saved)

        self._undo.append(restore)
        self._undo.append(lambda: post("/moto-api/reset"))
        self._undo.append(install_batch_sync_fix())
        self._undo.append(install_second_execution_fix())
        self._undo.append(install_events_fixes())
        self._undo.append(install_lambda_targets(self._deliver_to_function))
        self._undo.append(install_transact_fix())
        self._undo.append(install_query_fix())
        self._undo.append(install_jsonpath_cache())
        self._undo.append(install_dynamodb_serializer_fix())
        self._undo.append(install_dynamodb_answer_fix())
        self._undo.append(install_request_id_fix())
        self._undo.append(install_sqs_attributes_fix())
        self._undo.append(install_module_list_cache())
        self._undo.append(install_distributed_map_failures())
        self._undo.append(install_early_stop_fix())
        self._undo.append(install_in_process_sync_poll())

    def _stage(self, project: Path) -> tuple[Any, dict[str, str]]:
        # The stage's Config as `chalice local` builds it, without chalice.cli's factory: that
        # imports Chalice's deployer, packager and project wizard (60 ms of every start).
        from chalice.config import Config
        from chalice.constants import DEFAULT_APIGATEWAY_STAGE_NAME, DEFAULT_ENDPOINT_TYPE

        path = project / ".chalice" / "config.json"
        try:
            from_disk = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise PlaneError(f"cannot read the control plane's Chalice config {path}: {e}") from None

        def load_app() -> Any:
            # app.py and chalicelib/ import from the project folder (on sys.path since _start).
            import importlib

            return importlib.import_module("app").app

        config = Config(
            chalice_stage=self.config.stage,
            user_provided_params={"chalice_app": load_app},
            config_from_disk=from_disk,
            default_params={"project_dir": str(project), "api_gateway_stage": DEFAULT_APIGATEWAY_STAGE_NAME,
                            "api_gateway_endpoint_type": DEFAULT_ENDPOINT_TYPE, "autogen_policy": True},
        )
        return config, dict(config.environment_variables)

    def _jobs_dir(self) -> Path:
        from .batch import end_orphaned_tasks

        path = self.config.state_dir / "jobs"
        path.mkdir(parents=True, exist_ok=True)
        # Tasks of a plane that died (kill -9) keep running in their own sessions; their
        # runs came back aborted (persist.py), so they would only burn CPU and write to the
        # datastore of runs already ended.
        ended = end_orphaned_tasks(str(path))
        if ended:
            log.warning("ended %d task process(es) a previous plane on %s left running", ended, self.config.state_dir)
        return path

    def _create_stack(self, chalice_config: Any) -> None:
        from chalicelib import http
        from chalicelib.aws import Aws
        from chalicelib.bootstrap import ensure_resources
        from chalicelib.resource_names import states_role_name
        from chalicelib.settings import Settings

        http.reset()  # clients cached by an earlier plane or test point elsewhere
        self._undo.append(http.reset)
        settings = Settings.from_env()
        self.settings = settings
        aws = Aws(settings, self.session)
        ensure_resources(aws)
        iam = self.session.client("iam")
        trust = json.dumps({"Version": "2012-10-17", "Statement": []})
        iam.create_role(RoleName=states_role_name(settings.stage), AssumeRolePolicyDocument=trust)
        batch_role = iam.create_role(RoleName=f"flowplane-{settings.stage}-batch", AssumeRolePolicyDocument=trust)
        batch = self.session.client("batch")
        environment = batch.create_compute_environment(
            computeEnvironmentName=settings.job_queue,
            type="UNMANAGED",
            state="ENABLED",
            serviceRole=batch_role["Role"]["Arn"],
        )["computeEnvironmentArn"]
        batch.create_job_queue(
            jobQueueName=settings.job_queue,
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}],
        )
        batch.register_job_definition(
            jobDefinitionName=settings.job_definition,
            type="container",
            containerProperties={
                "image": "flowplane-local",  # this machine: LocalBatch runs the command here
                "command": [sys.executable, "-m", "flowplane", "task"],
                "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
            },
        )

    def _load_app(self, chalice_config: Any) -> Any:
        app = chalice_config.chalice_app
        self.app = app
        self.chalice_config = chalice_config
        return app

    def _route_handlers(self, app: Any, prefix: str) -> set[str]:
        """A rule per event handler (pattern → queue) and per scheduled handler, as `chalice deploy` makes."""
        from chalice.app import CloudWatchEventConfig, ScheduledEventConfig

        own = set()
        events = self.session.client("events")
        for source in app.event_sources:
            if isinstance(source, CloudWatchEventConfig):
                self.router.add(source.name, source.event_pattern)
                own.add(self.router.rule_names[-1])
            elif isinstance(source, ScheduledEventConfig):
                expression = source.schedule_expression
                if not isinstance(expression, str):
                    expression = expression.to_string()
                rule = f"{prefix}{source.name}"[:64]
                events.put_rule(Name=rule, ScheduleExpression=expression, State="ENABLED",
                                Description=source.description or "")
                function = f"arn:aws:lambda:{self.region}:{self.account}:function:{prefix}{source.name}"
                events.put_targets(Rule=rule, Targets=[{"Id": "handler", "Arn": function}])
                own.add(rule)
        return own

    def _serve(self, app: Any, chalice_config: Any) -> None:
        import functools

        from chalice.local import ChaliceRequestHandler, CustomLocalChalice, create_local_server

        original_class = app.__class__
        if original_class is CustomLocalChalice:
            # Left so by a local server that never finished starting elsewhere in this process.
            original_class = CustomLocalChalice.__bases__[1]
            app.__class__ = original_class
        # create_local_server gives the app a thread-local current_request (a class of its own),
        # before it binds the port: put the class back at stop, or if the bind fails.
        self._undo.append(lambda: setattr(app, "__class__", original_class))
        server = create_local_server(app, chalice_config, self.config.host, self.config.port)

        output, api_function = self.lambda_output, f"{app.app_name}-{self.config.stage}"
        one_at_a_time = self._lambda_lock

        class QuietHandler(ChaliceRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                log.debug("%s %s", self.address_string(), format % args)

            def _generic_handle(self) -> None:
                # Around the request's handling only: waiting for a keep-alive connection's
                # next request must not hold the lock.
                with one_at_a_time, output.capture(api_function):
                    super()._generic_handle()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle

        server.server.RequestHandlerClass = functools.partial(QuietHandler, app_object=app, config=chalice_config)
        httpd = server.server
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
                                  name="flowplane-local-api")
        thread.start()

        def shutdown() -> None:
            httpd.shutdown()
            httpd.server_close()
            thread.join(5)

        self._undo.append(shutdown)
        host, port = httpd.server_address[:2]
        self.url = f"http://{host}:{port}"

    def _write_url_file(self) -> None:
        info = {"url": self.url, "endpoint": self.endpoint, "pid": os.getpid(), "started_at": time.time(),
                "state_dir": str(self.config.state_dir)}
        path = self.config.state_dir / URL_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(info))
        os.replace(tmp, path)

    # --- the loop ------------------------------------------------------------------------------

    def _background(self) -> None:
        cfg = self.config
        next_schedule = time.monotonic()
        while not self._stop.wait(cfg.poll_seconds):
            now = time.monotonic()
            self._guarded("watching executions", self.watcher.poll)
            if cfg.schedule_seconds and now >= next_schedule:
                self._guarded("firing schedules", self.scheduler.tick)
                next_schedule = now + cfg.schedule_seconds

    def _guarded(self, what: str, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception:
            if not self._stop.is_set():
                log.exception("the local control plane failed %s", what)

    def _statuses(self) -> list[tuple[str, str]]:
        """Every execution's status, read from moto's backend in this process.

        ListStateMachines + ListExecutions over HTTP cost ~15 ms of CPU per state
        machine, four times a second, on the cores the tasks need; this costs
        microseconds. DescribeExecution still goes through the API.
        """
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        backend = stepfunctions_parser_backends[self.account][self.region]
        return [
            (e.execution_arn, e.status)
            for machine in list(backend.state_machines)
            for e in list(machine.executions)
            if getattr(e, "exec_status", None) is not None
        ]

    def _on_status(self, execution: dict[str, Any]) -> None:
        self.store.record_execution(execution)
        # Step Functions stops the .sync jobs of an execution that ended without them.
        if execution["status"] in ("FAILED", "TIMED_OUT", "ABORTED"):
            reason = f"the execution {execution['name']} ended {execution['status']}"
            self.batch.terminate_run(production_run_id(execution["name"]), reason)
        if self.config.on_execution is not None:
            self.config.on_execution(execution)

    def _deliver_to_function(self, function_arn: str, payload: Any) -> None:
        """An event a rule sends to one of the app's Lambdas (a triggered flow's launcher):
        invoked asynchronously, retried twice on failure, as EventBridge invokes Lambda."""
        with self._deliveries_lock:  # moto delivers on its request threads: one pool, made once
            if self._lambda_pool is None:
                from concurrent.futures import ThreadPoolExecutor

                pool = self._lambda_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="flowplane-local-lambda")
                self._undo.append(lambda: pool.shutdown(wait=True, cancel_futures=False))
            self._deliveries += 1
        self._lambda_pool.submit(self._invoke_async, function_arn, payload)

    def _invoke_async(self, function_arn: str, payload: Any) -> None:
        try:
            self._invoke_with_retries(function_arn, payload)
        finally:
            with self._deliveries_lock:
                self._deliveries -= 1

    def _invoke_with_retries(self, function_arn: str, payload: Any) -> None:
        prefix = f"{self.app.app_name}-{self.config.stage}-"
        function = function_arn.split(":")[6] if function_arn.count(":") >= 6 else ""
        if not function.startswith(prefix):
            log.warning("an event for %s, which is not a function of this control plane; dropped", function_arn)
            return
        for attempt in range(3):
            try:
                self.invoke(function[len(prefix):], payload)
                return
            except Exception:  # noqa: BLE001  (as Lambda: the handler's failure is retried, then dropped)
                log.exception("%s failed on an event (attempt %d of 3)", function, attempt + 1)

    # --- what callers use ---------------------------------------------------------------------------

    def invoke(self, handler: str, payload: Any) -> Any:
        """Call one of the app's Lambda handlers in-process, as Lambda would."""
        from chalice.local import LambdaContext

        function = self.app.handler_map.get(handler)
        if function is None:
            raise KeyError(f"the control plane has no function {handler!r}")
        scoped = self.chalice_config.scope(self.config.stage, handler)
        context = LambdaContext(
            f"{self.app.app_name}-{self.config.stage}-{handler}",
            memory_size=scoped.lambda_memory_size or 128,
            max_runtime_ms=(scoped.lambda_timeout or 60) * 1000,
        )
        with self._lambda_lock, self.lambda_output.capture(context.function_name):
            return function(payload, context)

    def settle(self, timeout: float = 30.0) -> bool:
        """Report every status change so far and wait until every event is handled."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.watcher.poll()
            if self.router.idle() and not self._deliveries:
                return True
            time.sleep(0.05)
        return False

    def running_executions(self) -> list[dict[str, Any]]:
        sfn = self.session.client("stepfunctions")
        out = []
        for m in sfn.list_state_machines()["stateMachines"]:
            out.extend(sfn.list_executions(stateMachineArn=m["stateMachineArn"], statusFilter="RUNNING")["executions"])
        return out

    def wait_for_runs(self, timeout: Optional[float] = None) -> bool:
        """Wait until no execution runs; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.running_executions():
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.25)
        return True

    # --- stop -----------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop runs still going (recorded ABORTED) and put back what start changed; the state is on disk already."""
        if not self._running:
            return
        self._running = False
        self._say("stopping the embedded control plane")
        try:
            self._stop.set()
            self._loop.join(5)
            sfn = self.session.client("stepfunctions")
            for e in self.running_executions():
                sfn.stop_execution(executionArn=e["executionArn"], error="Flowplane.LocalPlaneStopped",
                                   cause=STOPPED_CAUSE)
            self.batch.close()
            # StopExecution only asks the execution's thread to stop: wait for the ABORTED it ends
            # with, so the watcher reports and journals it before the journal closes.
            self.wait_for_runs(timeout=10)
            self.settle(timeout=10)
        finally:
            self._teardown()

    def _teardown(self) -> None:
        gc.unfreeze()  # what this plane held can be collected once it is gone
        self._stop.set()
        while self._undo:
            undo = self._undo.pop()
            try:
                undo()
            except Exception:
                log.exception("undoing a change of the local control plane failed")


@contextlib.contextmanager
def running_plane(**options: Any) -> Iterator[LocalPlane]:
    with LocalPlane(PlaneConfig(**options)) as plane:
        yield plane
