"""`flowplane ui`: a read-only run dashboard served on 127.0.0.1.

Every page is rendered on the server from the Client API (flowplane/client/), with the
user's own configuration, so it shows whatever `Flow(...)` shows: local runs, the
embedded plane, an AWS stack. Modules: `server` (HTTP and routing), `pages` (what each
page reads), `graph` (the run's DAG), `timeline` (the Gantt chart), `errors` (what a
person can act on), `cli` (the command). The DAG is laid out in the browser by dagre,
shipped in `static/` (no CDN, no build step).

Nothing here is imported by the control plane or the task runtime.
"""
