"""The task runtime: `flowplane task` runs one attempt of one task, locally or on AWS Batch.

The command and its arguments (command.py), everything checked before anything
is written (prepare.py), the attempt with @catch and @timeout (attempt.py), its
inputs (inputs.py), and the records, logs and events it leaves (recording.py);
beside them, what those use: the flow's loading (loader.py), parameters
(params.py), artifacts (persist.py), output capture (output.py), the task graph
(graph.py), @secrets (secrets.py), @catch's fallback (fallback.py), events
(events.py), AWS clients (aws.py), errors (errors.py), and how the embedded
plane starts a task without its imports: forked from a fork server
(`python -m flowplane.task.zygote`), or a process started ahead of its job
(`python -m flowplane.task.warm`).

Nothing is imported here: readers of a caught exception (errors.py) and of the
task graph (graph.py) load only what they name.
"""
