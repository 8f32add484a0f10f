"""Pre-flight against a real instance, run as a child of the `chatload` command (which must not
import boto3 itself): credentials, applied quotas and the warnings the plan deserves.

Reads one JSON object on standard input: {"region", "instance_id", "plan": RunPlan as a dict}.
Prints one JSON object: {"quotas": <meta.json quotas entry>, "warnings": [...]}.
Exit 2 with one line on standard error when there are no usable credentials.
"""

from __future__ import annotations

import json
import sys

from harness import preflight


def main() -> int:
    request = json.load(sys.stdin)
    import boto3  # only here: the caller's process stays free of boto3

    try:
        reading = preflight.read_quotas_for_instance(boto3.Session(), request["region"], request["instance_id"])
    except preflight.PreflightError as exc:
        print(f"chatload: {exc}", file=sys.stderr)
        return 2
    plan = preflight.RunPlan(**request["plan"])
    warnings = [*reading.notes, *preflight.quota_warnings(plan, reading)]
    json.dump({"quotas": preflight.meta_quotas(reading), "warnings": warnings}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
