"""`resume`: a new local run that clones what an earlier run (local or production) finished.

plan.py decides which steps may be cloned, origin.py finds and reads the origin
run through the Client API's provider, blobs.py brings its artifacts over as
cheaply as the datastores allow, clone.py writes each clone for the scheduler.
"""

from .clone import Cloner
from .origin import OriginRun, check_finished, find_origin, origin_parameters, read_origin
from .plan import ResumeError, ResumePlan, graph_differences, plan_resume

__all__ = [
    "Cloner",
    "OriginRun",
    "ResumeError",
    "ResumePlan",
    "check_finished",
    "find_origin",
    "graph_differences",
    "origin_parameters",
    "plan_resume",
    "read_origin",
]
