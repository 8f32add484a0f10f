"""Benchmark: StartChatContact throughput and paced latency of the emulator beside a no-op server.

Both servers run on the same stack (uvicorn + httptools + uvloop, raw ASGI, one process, TCP_NODELAY,
keep-alive), pinned to the same CPU, in the same run, so the figures come with their reference:

1. throughput: Debian's `wrk` (one thread, keep-alive connections, pinned to another CPU) sends
   `PUT /contact/chat` with a valid StartChatContact body and a SigV4-shaped Authorization header
   (no ClientToken, so nothing is replayed) for --duration seconds; requests/s from wrk.
2. latency at a fixed rate: a single-threaded raw-socket keep-alive client paces --rate requests/s
   over --latency-connections connections (busy-polling epoll for exact send times) and records each
   request's time from send to the last response byte; p50/p99/max, and how many took >= 40 ms
   (a Nagle / delayed-ACK stall would show there).

The emulator runs with a benchmark config (huge rate and quota) so no request is refused; the script
checks the emulator's own counters afterwards. Prints one JSON object.

    .venv/bin/python benchmarks/bench_emulator.py [--duration 5] [--rate 1000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatload.contracts import DEFAULT_CONTACT_FLOW_ID, DEFAULT_INSTANCE_ID  # noqa: E402
from chatload.contracts import LISTENING_LINE as LISTENING  # noqa: E402
from chatload.emulator_control import to_toml  # noqa: E402

BODY = json.dumps(
    {
        "InstanceId": DEFAULT_INSTANCE_ID,
        "ContactFlowId": DEFAULT_CONTACT_FLOW_ID,
        "ParticipantDetails": {"DisplayName": "bench"},
    },
    separators=(",", ":"),
)
AUTH = (
    "AWS4-HMAC-SHA256 Credential=AKIDCHATLOAD/20240101/us-east-1/connect/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=0000"
)
HEADERS = {
    "Content-Type": "application/x-amz-json-1.1",
    "Authorization": AUTH,
    "amz-sdk-request": "attempt=1; max=1",
    "X-Amz-Date": "20240101T000000Z",
}
BENCH_CONFIG = {
    "rates": {"StartChatContact": {"rate": 1e12, "burst": 1e12}},
    "instances": [{"id": DEFAULT_INSTANCE_ID, "concurrent_chats": 10**12, "contact_flows": [DEFAULT_CONTACT_FLOW_ID]}],
}

# The no-op reference: the same server stack (emulator.http_stack.serve), reading the body and
# answering a small JSON body with as many headers as the emulator's answer.
NOOP_APP = textwrap.dedent("""
    import socket, sys
    sys.path.insert(0, sys.argv[1])
    from chatload.emulator.http_stack import serve

    BODY = b'{"ContactId":"00000000-0000-4000-8000-000000000000"}'
    HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY)),
               (b"x-amzn-requestid", b"00000000-0000-4000-8000-000000000000")]

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        message = await receive()
        while message.get("more_body"):
            message = await receive()
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": BODY})

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    port = sock.getsockname()[1]
    serve(app, sock, quiet=True,
          on_started=lambda: print("chatload emulator listening on http://127.0.0.1:%d" % port, flush=True))
""")


def _pin(cpu: int | None) -> dict:
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return {}
    return {"preexec_fn": lambda: os.sched_setaffinity(0, {cpu})}


@contextlib.contextmanager
def _server(command: list[str], cpu: int | None, startup: dict[str, float]) -> Iterator[str]:
    began = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, **_pin(cpu)
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith(LISTENING):
            raise RuntimeError(f"server did not start: {line!r} {process.stderr.read() if process.stderr else ''}")
        startup["seconds"] = time.perf_counter() - began
        yield line[len(LISTENING) :].strip()
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wrk(url: str, duration_s: float, connections: int, cpu: int | None, script: Path) -> float:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration_s:g}s", "-s", str(script), url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + 30, **_pin(cpu))
    match = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    if done.returncode != 0 or not match:
        raise RuntimeError(f"wrk failed: {done.stdout} {done.stderr}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    if errors:
        raise RuntimeError(f"wrk saw {errors.group(1)} non-2xx answers: the benchmark config refused requests")
    return float(match.group(1))


def _request_bytes(host: str, port: int) -> bytes:
    head = ["PUT /contact/chat HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(BODY)}"]
    head += [f"{k}: {v}" for k, v in HEADERS.items()]
    return ("\r\n".join(head) + "\r\n\r\n" + BODY).encode()


def _paced_latency(url: str, rate: float, duration_s: float, warmup_s: float, connections: int) -> dict:
    """Open-loop client: send at exact intervals over idle keep-alive connections, time each answer."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    request = _request_bytes(host, int(port))
    poller = select.epoll()
    socks: dict[int, socket.socket] = {}
    idle: list[int] = []
    for _ in range(connections):
        s = socket.create_connection((host, int(port)))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        socks[s.fileno()] = s
        idle.append(s.fileno())
        poller.register(s.fileno(), select.EPOLLIN)
    sent_at: dict[int, float] = {}
    buffers: dict[int, bytearray] = {fd: bytearray() for fd in socks}
    latencies: list[float] = []
    late_sends = 0
    interval = 1.0 / rate
    total = int(rate * (warmup_s + duration_s))
    warmup = int(rate * warmup_s)
    start = time.perf_counter() + 0.05
    k = 0
    received = 0
    try:
        while received < total:
            now = time.perf_counter()
            if k < total and now >= start + k * interval and idle:
                fd = idle.pop()
                if now - (start + k * interval) > 0.001:
                    late_sends += 1
                sent_at[fd] = time.perf_counter()
                socks[fd].sendall(request)
                k += 1
                continue
            for fd, _ in poller.poll(0):
                data = socks[fd].recv(65536)
                if not data:
                    raise RuntimeError("server closed a keep-alive connection")
                buf = buffers[fd]
                buf += data
                head_end = buf.find(b"\r\n\r\n")
                if head_end < 0:
                    continue
                length = int(re.search(rb"(?i)content-length:\s*(\d+)", bytes(buf[:head_end])).group(1))
                if len(buf) < head_end + 4 + length:
                    continue
                if not buf.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"non-200 answer: {bytes(buf[:60])!r}")
                elapsed = time.perf_counter() - sent_at.pop(fd)
                received += 1
                if received > warmup:
                    latencies.append(elapsed)
                del buf[: head_end + 4 + length]
                idle.append(fd)
    finally:
        for s in socks.values():
            s.close()
        poller.close()
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 3)

    return {
        "rate": rate,
        "requests": len(latencies),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "p999_ms": pct(0.999),
        "max_ms": round(latencies[-1] * 1000, 3),
        "over_40ms": sum(1 for x in latencies if x >= 0.040),
        "late_sends": late_sends,
    }


def _state_counters(url: str) -> dict[str, int]:
    import urllib.request

    with urllib.request.urlopen(url + "/_emulator/state", timeout=10) as response:
        return json.load(response)["operations"]["StartChatContact"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement (default 3)")
    parser.add_argument(
        "--rounds", type=int, default=5, help="alternating rounds per server; the best round counts (default 5)"
    )
    parser.add_argument("--connections", type=int, default=32, help="wrk keep-alive connections (default 32)")
    parser.add_argument("--rate", type=float, default=1000.0, help="paced rate for the latency figure (default 1000)")
    parser.add_argument("--latency-connections", type=int, default=16)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print(
            "bench_emulator: wrk is not installed; install Debian's wrk (apt-get install -y wrk) and rerun",
            file=sys.stderr,
        )
        return 2
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server_cpu, client_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    load_before = os.getloadavg()[0]

    rounds: dict[str, dict[str, list]] = {"noop": {"rps": [], "latency": []}, "emulator": {"rps": [], "latency": []}}
    startups: dict[str, dict[str, float]] = {"noop": {}, "emulator": {}}
    with tempfile.TemporaryDirectory(prefix="chatload-bench-") as tmp:
        config = Path(tmp) / "bench.toml"
        config.write_text(to_toml(BENCH_CONFIG))
        script = Path(tmp) / "start_chat.lua"
        lua = ['wrk.method = "PUT"', 'wrk.path = "/contact/chat"', f"wrk.body = {json.dumps(BODY)}"]
        lua += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in HEADERS.items()]
        script.write_text("\n".join(lua) + "\n")
        noop_file = Path(tmp) / "noop_server.py"
        noop_file.write_text(NOOP_APP)
        noop_command = [sys.executable, str(noop_file), str(ROOT)]
        emulator_command = [
            sys.executable,
            "-m",
            "chatload.emulator",
            "--port",
            "0",
            "--config",
            str(config),
            "--quiet",
        ]
        # Both servers run side by side on the same CPU and are measured alternately, so a busy
        # machine disturbs both alike; the best round of each is reported.
        with (
            _server(noop_command, server_cpu, startups["noop"]) as noop_url,
            _server(emulator_command, server_cpu, startups["emulator"]) as emulator_url,
        ):
            urls = {"noop": noop_url, "emulator": emulator_url}
            for url in urls.values():
                _wrk(url, 1.0, args.connections, client_cpu, script)  # warm-up
            for _ in range(args.rounds):
                for name, url in urls.items():
                    rounds[name]["rps"].append(_wrk(url, args.duration, args.connections, client_cpu, script))
                    if client_cpu is not None:
                        os.sched_setaffinity(0, {client_cpu})
                    try:
                        rounds[name]["latency"].append(
                            _paced_latency(url, args.rate, args.duration, 0.5, args.latency_connections)
                        )
                    finally:
                        if cpus:
                            os.sched_setaffinity(0, set(cpus))
            counters = _state_counters(emulator_url)
    refused = {
        k: v
        for k, v in counters.items()
        if k in ("throttled_tps", "throttled_concurrency", "invalid", "not_found", "server_error") and v
    }
    if refused:
        raise RuntimeError(f"the emulator refused requests: {refused}")

    def best(name: str) -> dict:
        latency = min(rounds[name]["latency"], key=lambda r: r["p99_ms"])
        return {
            "requests_per_s": round(max(rounds[name]["rps"])),
            "requests_per_s_rounds": [round(x) for x in rounds[name]["rps"]],
            "p99_ms_rounds": [r["p99_ms"] for r in rounds[name]["latency"]],
            "startup_s": round(startups[name]["seconds"], 3),
            **latency,
        }

    emu, noop = best("emulator"), best("noop")
    report = {
        "benchmark": "emulator StartChatContact vs no-op ASGI app, same stack, same CPU, same run",
        "server_cpu": server_cpu,
        "client_cpu": client_cpu,
        "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "emulator": emu,
        "noop": noop,
        "emulator_accepted": counters["accepted"],
        "ratio": {
            "throughput_emulator_over_noop": round(emu["requests_per_s"] / noop["requests_per_s"], 3),
            "p99_emulator_over_noop": round(emu["p99_ms"] / noop["p99_ms"], 3),
        },
        "targets": {
            "requests_per_s_at_least_10000": emu["requests_per_s"] >= 10000,
            "p99_under_2ms_at_1000_per_s": emu["p99_ms"] < 2.0,
            "no_40ms_stalls": emu["over_40ms"] == 0,
            "startup_under_2s": emu["startup_s"] < 2.0,
        },
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
