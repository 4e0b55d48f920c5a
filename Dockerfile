# The container image AWS Batch runs every Flowplane task in: Python and the flowplane SDK,
# whose `flowplane task ...` command the state machines start (see infra/resources.json,
# parameter TaskImage). Build and push it as the README's "Deploying to AWS" says.
#
# Flows that import more (pandas, torch, ...) declare it with @pypi/@conda: a task builds or
# unpacks the step's locked environment (with uv, installed here as an SDK requirement) and
# runs in it. Or extend this image and name it with @batch(image=...):
#   FROM <this image>
#   RUN pip install --no-cache-dir pandas==2.2.3
# The control plane never runs flow code; only this image does.
FROM python:3.11-slim-bookworm

# Logs reach CloudWatch (/aws/batch/job) as they are printed; no .pyc writes at run time.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the SDK's wheel is built from: the control plane (app.py, chalicelib/) and the
# tests stay out of the image.
COPY pyproject.toml README.md /tmp/flowplane-src/
COPY flowplane /tmp/flowplane-src/flowplane
RUN pip install /tmp/flowplane-src && rm -rf /tmp/flowplane-src && flowplane --help >/dev/null

# Tasks need no privileges; their home is where packages unpack and temp files go.
RUN useradd --create-home --uid 1000 flowplane
USER flowplane
WORKDIR /home/flowplane

# Batch overrides the command for every task (`flowplane task --step ... --task-id ...`).
CMD ["flowplane", "--help"]
