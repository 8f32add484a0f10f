"""The Kubernetes example and the IAM policy of the docs: they parse, and they fit chatload and Locust."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from chatload.harness.scenario.files import load_scenario

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "deploy" / "kubernetes" / "chatload.yaml"


def documents() -> list[str]:
    return [doc for doc in MANIFEST.read_text(encoding="utf-8").split("\n---\n") if doc.strip()]


def top_level(doc: str, key: str) -> str | None:
    match = re.search(rf"^{key}:\s*(\S.*)?$", doc, re.MULTILINE)
    return (match.group(1) or "").strip() if match else None


def named(kind: str, name: str) -> str:
    for doc in documents():
        if top_level(doc, "kind") == kind and re.search(rf"^  name: {re.escape(name)}$", doc, re.MULTILINE):
            return doc
    raise AssertionError(f"no {kind} {name} in {MANIFEST}")


def args_of(doc: str) -> list[str]:
    """The container args, in either of the two forms the manifest uses (flow list or block list)."""
    flow = re.search(r"^\s+args: \[(.*)\]$", doc, re.MULTILINE)
    if flow:
        return [json.loads(item) for item in re.findall(r'"[^"]*"', flow.group(1))]
    block = re.search(r"^(\s+)args:\n((?:\1  - .*\n)+)", doc, re.MULTILINE)
    assert block, "no args"
    return [json.loads(line.split("- ", 1)[1]) for line in block.group(2).splitlines()]


def test_every_document_has_api_version_kind_and_name():
    text = MANIFEST.read_text(encoding="utf-8")
    assert "\t" not in text
    kinds = []
    for doc in documents():
        assert top_level(doc, "apiVersion"), doc[:80]
        kinds.append(top_level(doc, "kind"))
        assert re.search(r"^metadata:\n(  .*\n)*  name: [a-z0-9-]+$", doc, re.MULTILINE), doc[:80]
    assert kinds.count("Deployment") == 3 and kinds.count("Service") == 2 and "ConfigMap" in kinds


def test_master_service_exposes_worker_and_web_ports():
    service = named("Service", "chatload-master")
    assert "port: 5557" in service and "port: 8089" in service
    master = named("Deployment", "chatload-master")
    assert "replicas: 1" in master and "containerPort: 5557" in master and "containerPort: 8089" in master


def test_workers_find_the_master_and_read_the_same_scenario_path():
    master, worker = args_of(named("Deployment", "chatload-master")), args_of(named("Deployment", "chatload-worker"))
    assert "--master" in master and "--worker" in worker
    assert worker[worker.index("--master-host") + 1] == "chatload-master"
    assert master[master.index("--scenario") + 1].startswith("/etc/chatload/")
    for name in ("chatload-master", "chatload-worker"):
        assert "mountPath: /etc/chatload" in named("Deployment", name)
    assert re.search(r"replicas: \d+", named("Deployment", "chatload-worker"))


def test_the_configmap_scenario_is_a_valid_scenario(tmp_path):
    doc = named("ConfigMap", "chatload-scenario")
    block = re.search(r"^  scenario\.toml: \|\n((?:    .*\n|\n)+)", doc + "\n", re.MULTILINE)
    assert block, "scenario.toml block not found"
    path = tmp_path / "scenario.toml"
    path.write_text(textwrap.dedent(block.group(1)), encoding="utf-8")
    scenario = load_scenario(path)
    assert scenario.name == "k8s-example" and scenario.target.kind == "emulator"
    assert [s.name for s in scenario.stages] == ["ramp", "steady"]


def test_manifest_parses_as_yaml():
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed; the text checks above still run")
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text(encoding="utf-8")) if d]
    assert {d["kind"] for d in docs} == {"ServiceAccount", "ConfigMap", "Deployment", "Service"}


LIST_OPTIONS = """
import json
from locust import argument_parser
from chatload.harness.runtime import options
parser = argument_parser.get_parser()
options.add_arguments(parser)
print(json.dumps(sorted(s for a in parser._actions for s in a.option_strings)))
"""


@pytest.fixture(scope="module")
def known_options() -> set[str]:
    # In a child process: importing locust patches gevent, which this test process must not get.
    out = subprocess.run(
        [sys.executable, "-c", LIST_OPTIONS], capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return set(json.loads(out.stdout))


def locust_command_lines(markdown: str) -> list[str]:
    """Locust command lines of the doc's code blocks (continuations joined), and Job args lines."""
    lines = []
    for block in re.findall(r"```(?:sh|yaml)\n(.*?)```", markdown, re.DOTALL):
        for command in block.replace("\\\n", " ").splitlines():
            if "locust" in command.split("#")[0] and not command.lstrip().startswith("kubectl"):
                lines.append(command.split("#")[0])
            elif command.lstrip().startswith(("args:", '"--')):
                lines.append(command)
    return lines


def test_manifest_flags_exist_in_locust_and_chatload(known_options):
    for name in ("chatload-master", "chatload-worker"):
        for flag in args_of(named("Deployment", name)):
            if flag.startswith("-"):
                assert flag in known_options, f"{flag} of {name} is not a Locust or chatload option"


def test_distributed_doc_flags_exist_in_locust_and_chatload(known_options):
    lines = locust_command_lines((ROOT / "docs" / "distributed.md").read_text(encoding="utf-8"))
    flags = {flag for line in lines for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]+", line)}
    assert {"--master", "--worker", "--master-host", "--expect-workers", "--headless"} <= flags
    assert flags <= known_options, flags - known_options


def test_iam_policy_in_the_docs_is_valid_json():
    text = (ROOT / "docs" / "real-instance.md").read_text(encoding="utf-8")
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, re.DOTALL) if '"Statement"' in b]
    assert len(blocks) == 1
    actions = {
        a for s in blocks[0]["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert {"connect:StartChatContact", "connect:StopContact", "servicequotas:GetServiceQuota"} <= actions
