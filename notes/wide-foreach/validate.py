"""asl-validator over the Distributed Map shapes a compiler would emit (spike for issue 15)."""
import json, subprocess, sys, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import importlib.util
spec = importlib.util.spec_from_file_location("spike", Path(__file__).with_name("spike.py")); spike = importlib.util.module_from_spec(spec); spec.loader.exec_module(spike)

child = {"StartAt": "body", "States": {"body": {**spike.batch_task("body", "$.tid"), "End": True}}}
dist = {
    "Type": "Map",
    "ItemReader": {
        "Resource": "arn:aws:states:::s3:getObject",
        "ReaderConfig": {"InputType": "JSON"},
        "Parameters": {"Bucket": "fp-datastore", "Key.$": "States.Format('root/F/{}/start/1/foreach-items.json', $$.Execution.Name)"},
    },
    "ItemSelector": {"fp.$": "$.fp", "tid.$": "States.Format('1.{}', $$.Map.Item.Index)"},
    "MaxConcurrency": 10000,
    "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, **child},
    "ResultSelector": {"n.$": "States.ArrayLength($)"},
    "ResultPath": "$.fe",
    "Next": "join",
}
def machine(m):
    return {"StartAt": "ctx", "States": {"ctx": {"Type": "Pass", "Next": "split-foreach"}, "split-foreach": m,
            "join": {"Type": "Pass", "End": True}}}
variants = {
    "distributed": machine(dist),
    "distributed+ResultWriter": machine({**dist, "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": "b", "Prefix": "p"}}}),
    "distributed+ToleratedFailurePercentage0": machine({**dist, "ToleratedFailurePercentage": 0}),
    "distributed no ResultSelector (output > 256 KiB at width)": machine({k: v for k, v in dist.items() if k != "ResultSelector"}),
    "distributed+nested inline Map": machine({**dist, "ItemProcessor": {**dist["ItemProcessor"], "States": {"body": {**spike.batch_task("body", "$.tid"), "Next": "inner"},
        "inner": {"Type": "Map", "ItemsPath": "$.fe.i", "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "x", "States": {"x": {**spike.batch_task("x", "$.tid"), "End": True}}}, "End": True}}}}),
    "choice: inline below width else distributed": {"StartAt": "width", "States": {
        "width": {"Type": "Choice", "Choices": [{"Variable": "$.fe.n", "NumericLessThanEquals": 500, "Next": "inline"}], "Default": "dist"},
        "inline": {"Type": "Map", "ItemsPath": "$.fe.i", "MaxConcurrency": 40, "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, **child}, "ResultPath": None, "Next": "join"},
        "dist": dist, "join": {"Type": "Pass", "End": True}}},
    "choice, inline copy's states renamed (body~inline)": {"StartAt": "width", "States": {
        "width": {"Type": "Choice", "Choices": [{"Variable": "$.fe.n", "NumericLessThanEquals": 500, "Next": "inline"}], "Default": "dist"},
        "inline": {"Type": "Map", "ItemsPath": "$.fe.i", "MaxConcurrency": 40, "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "body~inline", "States": {"body~inline": child["States"]["body"]}}, "ResultPath": None, "Next": "join"},
        "dist": dist, "join": {"Type": "Pass", "End": True}}},
    "bad: DISTRIBUTED with ItemReader missing Resource (control)": machine({**dist, "ItemReader": {"ReaderConfig": {"InputType": "JSON"}}}),
}
bin_ = Path(__file__).resolve().parents[2] / "node_modules/.bin/asl-validator"
with tempfile.TemporaryDirectory() as d:
    for name, definition in variants.items():
        p = Path(d) / "m.json"; p.write_text(json.dumps(definition))
        r = subprocess.run([str(bin_), "--json-path", str(p)], capture_output=True, text=True)
        print(f"{name}: rc={r.returncode} {(r.stdout + r.stderr).strip()[:300]}")
if "--print" in sys.argv:
    print(json.dumps(variants["distributed"], indent=1))
