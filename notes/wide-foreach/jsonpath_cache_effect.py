import importlib.util, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("spike", "notes/wide-foreach/spike.py"); spike = importlib.util.module_from_spec(spec); spec.loader.exec_module(spike)
from flowplane.local.moto_patches import install_jsonpath_cache
spike.e1_width(sizes=[10000], max_conc=1000)
undo = install_jsonpath_cache(); print("-- with install_jsonpath_cache (as the plane)")
spike.e1_width(sizes=[10000], max_conc=1000)
