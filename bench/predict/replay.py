#!/usr/bin/env python3
"""Replays a time-compressed access trace of several services against the real
chitty-agent and the Connect emulator, with prediction off and on.

  sudo python3 bench/predict/replay.py [--agent build/agent/chitty-agent]
      [--seed 1] [--minutes 45] [--factor 20] [--latency 80,400] [--json PATH]
  sudo python3 bench/predict/replay.py --short      # CI: 6 trace-minutes, 80 ms

For each upstream latency and each of prediction off/on it starts a fresh
emulator (every /v1/vaults request delayed by the latency) and a fresh agent
(new state directory), then runs every service's runs as separate processes
(fork, setuid to the service's uid, read at the scheduled times over the
agent's socket, report through a pipe). See bench/README.md, "Prediction
replay", for what each figure means.

Needs root (setuid to the services' uids); otherwise exits 77 (skipped).
Exit status: 0 done (targets missed included); 1 broken (the agent or the
emulator did not start or died, a read failed, or with prediction on the
hit rate over predictable reads is not above the one with it off); 2 usage.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import http.client
import json
import math
import os
import platform
import secrets
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trace as tracegen  # noqa: E402  (bench/predict/trace.py)

SOURCE_ROOT = os.environ.get("CHITTY_SOURCE_ROOT") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKEN = "bench-token"
PR_SET_PDEATHSIG = 1
HIT_STATES = ("HIT", "STALE")
# Target: on-p99 over predictable reads "the same" at both latencies.
P99_SAME_MS = 10.0


class Broken(Exception):
    """Something that makes the measurement meaningless (exit 1)."""


def die_with_parent() -> None:
    """In a child: SIGKILL when the replayer dies (set after any setuid:
    a credential change clears it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:
        os._exit(1)


# ---------------------------------------------------------------- HTTP over the agent's socket

class UnixHttp:
    """A keep-alive HTTP/1.1 client on a Unix socket (GET only)."""

    def __init__(self, path: str, timeout: float = 10.0):
        self.path = path
        self.timeout = timeout
        self.sock = None
        self.buf = b""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None
        self.buf = b""

    def _connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)
        self.buf = b""

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("connection closed by the agent")
        return data

    def get(self, target: str) -> tuple:
        """(status, headers with lower-case names, body)."""
        for attempt in (0, 1):
            reused = self.sock is not None
            if not reused:
                self._connect()
            try:
                self.sock.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
                while b"\r\n\r\n" not in self.buf:
                    self.buf += self._recv()
                break
            except (ConnectionError, BrokenPipeError):
                # An idle keep-alive connection the agent closed: once more on a new one.
                self.close()
                if attempt == 1 or not reused:
                    raise
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            self.buf += self._recv()
        body, self.buf = self.buf[:length], self.buf[length:]
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body


def secret_target(ref: str) -> str:
    return "/v1/secret?ref=" + urllib.parse.quote(ref, safe="")


# ---------------------------------------------------------------- one run of a service (a child process)

def run_service_process(uid: int, reads: list, t0: float, factor: float, sock_path: str, wfd: int) -> None:
    """In the forked child: become the service's uid, read at the scheduled
    times, write one JSON line per read to `wfd`. Never returns."""
    code = 0
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.closerange(3, wfd)
        os.closerange(wfd + 1, 1 << 16)
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        die_with_parent()
        client = UnixHttp(sock_path)
        for index, t, ref in reads:
            due = t0 + t / factor
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            start = time.monotonic()
            result = {"i": index, "late_ms": round((start - due) * 1000.0, 3)}
            try:
                status, headers, body = client.get(secret_target(ref))
                result["status"] = status
                result["cache"] = headers.get("x-cache", "")
                if status != 200:
                    result["error"] = body[:300].decode("utf-8", "replace")
            except Exception as e:  # noqa: BLE001  (reported, counted as a failed read)
                client.close()
                result["status"] = -1
                result["error"] = f"{type(e).__name__}: {e}"
            result["lat_ms"] = round((time.monotonic() - start) * 1000.0, 3)
            line = (json.dumps(result) + "\n").encode()
            while line:
                line = line[os.write(wfd, line):]
        client.close()
    except BaseException as e:  # noqa: BLE001
        try:
            os.write(wfd, (json.dumps({"fatal": f"{type(e).__name__}: {e}"}) + "\n").encode())
        except OSError:
            pass
        code = 1
    os._exit(code)


# ---------------------------------------------------------------- the emulator and the agent

def wait_for(what: str, check, timeout: float, alive=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise Broken(f"{what}: the process exited")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise Broken(f"{what}: not ready within {timeout:.0f} s")


def tail(path: str, n: int = 20) -> str:
    try:
        with open(path, "rb") as f:
            return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-n:])
    except OSError:
        return ""


class Emulator:
    def __init__(self, node: str, workdir: str, fixture: dict):
        self.dir = workdir
        self.fixture_path = os.path.join(workdir, "fixture.json")
        with open(self.fixture_path, "w") as f:
            json.dump(fixture, f)
        self.port_file = os.path.join(workdir, "connect.port")
        self.log_path = os.path.join(workdir, "emulator.log")
        emulator = os.path.join(SOURCE_ROOT, "tests/fakes/connect-emulator/emulator.js")
        with open(self.log_path, "wb") as log:
            # --exit-with-stdin: the emulator dies with us even on SIGKILL.
            self.proc = subprocess.Popen(
                [node, emulator, "--fixtures", self.fixture_path, "--port-file", self.port_file, "--quiet",
                 "--exit-with-stdin"],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        try:
            wait_for("the Connect emulator", lambda: os.path.getsize(self.port_file) > 0, 15,
                     lambda: self.proc.poll() is None)
        except Broken as e:
            raise Broken(f"{e}\n{tail(self.log_path)}") from None
        with open(self.port_file) as f:
            self.port = int(f.read().strip())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def admin(self, method: str, path: str, body=None) -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            data = None if body is None else json.dumps(body)
            conn.request(method, "/__emulator/" + path, body=data,
                         headers={"Content-Type": "application/json"} if data else {})
            r = conn.getresponse()
            payload = r.read()
            if r.status != 200:
                raise Broken(f"emulator admin {method} {path}: {r.status} {payload[:200]!r}")
            return json.loads(payload)
        finally:
            conn.close()

    def item_titles(self) -> dict:
        """{item id: title} over every vault, through the Connect API."""
        def get(path: str):
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                conn.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
                r = conn.getresponse()
                payload = r.read()
                if r.status != 200:
                    raise Broken(f"emulator GET {path}: {r.status}")
                return json.loads(payload)
            finally:
                conn.close()
        out = {}
        for vault in get("/v1/vaults"):
            for item in get(f"/v1/vaults/{vault['id']}/items"):
                out[item["id"]] = item["title"]
        return out

    def stop(self) -> None:
        stop_process(self.proc)
        if self.proc.stdin:
            self.proc.stdin.close()


def stop_process(proc: subprocess.Popen, grace: float = 15.0) -> None:
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def duration(seconds: float) -> str:
    """A config duration in whole milliseconds (docs/config.md: integer + unit)."""
    return f"{max(1, round(seconds * 1000))}ms"


def agent_config(workdir: str, emulator_url: str, trace: tracegen.Trace, factor: float, predict: bool,
                 windows: dict) -> str:
    """The agent's configuration: every duration of trace time divided by
    `factor`, every rate budget multiplied by it."""
    token_file = os.path.join(workdir, "op-token")
    with open(token_file, "w") as f:
        f.write(TOKEN + "\n")
    os.chmod(token_file, 0o600)
    f = factor
    lines = [
        "[agent]",
        f'socket = "{workdir}/agent.sock"',
        'socket_mode = "0666"',
        "socket_world_accessible = true",
        f'state_dir = "{workdir}/state"',
        'log_level = "warning"',
        "max_requests_per_connection = 1000000000",
        "",
        "[cache]",
        f'ttl = "{duration(trace.params.ttl / f)}"',
        f'fallback_window = "{duration(3 * trace.params.ttl / f)}"',
        "",
        "[upstream.onepassword]",
        f'url = "{emulator_url}"',
        f'token_file = "{token_file}"',
        f'resolution_ttl = "{duration(windows["resolution_ttl"] / f)}"',
        "",
        "[predict]",
        f"enabled = {'true' if predict else 'false'}",
        f'startup_window = "{duration(windows["startup_window"] / f)}"',
        f'coaccess_window = "{duration(windows["coaccess_window"] / f)}"',
        f'periodic_lead = "{duration(windows["periodic_lead"] / f)}"',
        f'save_interval = "{duration(300 / f)}"',
        f"max_prefetches_per_minute = {round(600 * f)}",
        f"max_prefetches_per_service_per_minute = {round(120 * f)}",
        f"upstream_reads_per_hour = {round(1000 * f)}",
        "",
    ]
    for s in trace.services:
        allow = ", ".join(json.dumps(r) for r in s.allowed)
        lines += ["[[service]]", f'name = "{s.name}"', f"uid = {s.uid}", f"allow = [{allow}]",
                  'rate_limit = "100000000/h"', ""]
    return "\n".join(lines)


def fixture(trace: tracegen.Trace, seed: int) -> dict:
    items = []
    refs = sorted({r for s in trace.services for r in s.allowed})
    for n, ref in enumerate(refs):
        title = ref.split("/")[3]
        items.append({"title": title, "category": "API_CREDENTIAL",
                      "fields": [{"id": tracegen.FIELD, "label": tracegen.FIELD, "type": "CONCEALED",
                                  "value": f"bench-{seed}-{n:03d}-{secrets.token_hex(12)}"}]})
    return {"tokens": {TOKEN: {"vaults": "*"}}, "vaults": [{"name": tracegen.VAULT, "items": items}]}


class Agent:
    def __init__(self, binary: str, workdir: str, config: str):
        self.dir = workdir
        self.sock = os.path.join(workdir, "agent.sock")
        self.config_path = os.path.join(workdir, "agent.toml")
        with open(self.config_path, "w") as f:
            f.write(config)
        self.log_path = os.path.join(workdir, "agent.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([binary, "--config", self.config_path], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, start_new_session=True,
                                         preexec_fn=die_with_parent)

        def healthy() -> bool:
            c = UnixHttp(self.sock, timeout=2)
            try:
                return c.get("/health")[0] == 200
            finally:
                c.close()
        try:
            wait_for("chitty-agent", healthy, 15, self.alive)
        except Broken as e:
            raise Broken(f"{e}\n{tail(self.log_path)}") from None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def metrics(self) -> dict:
        c = UnixHttp(self.sock)
        try:
            status, _, body = c.get("/metrics")
        finally:
            c.close()
        if status != 200:
            raise Broken(f"/metrics answered {status}")
        return parse_metrics(body.decode())

    def stop(self) -> None:
        stop_process(self.proc)


def parse_metrics(text: str) -> dict:
    """{name: {frozenset(labels): value}} from Prometheus text."""
    out: dict = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        labels = {}
        name = name_labels
        if "{" in name_labels:
            name, _, rest = name_labels.partition("{")
            for part in rest.rstrip("}").split(","):
                if "=" in part:
                    k, _, v = part.partition("=")
                    labels[k.strip()] = v.strip().strip('"')
        try:
            out.setdefault(name, {})[frozenset(labels.items())] = float(value)
        except ValueError:
            pass
    return out


# ---------------------------------------------------------------- one configuration

def replay(trace: tracegen.Trace, args, latency_ms: int, predict: bool, node: str, windows: dict) -> dict:
    name = f"{'on' if predict else 'off'}@{latency_ms}"
    workdir = tempfile.mkdtemp(prefix="chitty-predict.")
    os.chmod(workdir, 0o755)  # the services' uids reach the socket; the state directory stays 0700
    emulator = agent = None
    children: dict = {}
    sel = selectors.DefaultSelector()
    try:
        emulator = Emulator(node, workdir, fixture(trace, trace.params.seed))
        emulator.admin("POST", "faults", {"mode": "slow", "delay_ms": latency_ms, "path_prefix": "/v1/vaults"})
        agent = Agent(args.agent, workdir,
                      agent_config(workdir, emulator.url, trace, args.factor, predict, windows))

        # Runs in order of their start; a service's next run is forked only
        # once its previous process has gone (a restart).
        runs = []
        for s in trace.services:
            for k, (start, _) in enumerate(s.runs):
                reads = [(i, r.t, r.ref) for i, r in enumerate(trace.reads) if r.service == s.name and r.run == k]
                if reads:
                    runs.append((start, s, k, reads))
        runs.sort(key=lambda x: x[0])
        t0 = time.monotonic() + 1.0
        end_by = t0 + trace.duration / args.factor + 120.0
        results: dict = {}
        buffers: dict = {}
        running: dict = {}  # service name -> pid
        print(f"[{name}] replaying {len(trace.reads)} reads over {trace.duration / args.factor:.0f} s",
              file=sys.stderr, flush=True)
        while runs or children:
            now = time.monotonic()
            if now > end_by:
                raise Broken("the replay overran its time (a run is stuck)")
            if not agent.alive():
                raise Broken(f"chitty-agent died during the replay\n{tail(agent.log_path)}")
            i = 0
            while i < len(runs) and t0 + runs[i][0] / args.factor - 0.25 <= now:
                if runs[i][1].name in running:
                    i += 1
                    continue
                start, s, k, reads = runs.pop(i)
                rfd, wfd = os.pipe()
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    os.close(rfd)
                    run_service_process(s.uid, reads, t0, args.factor, agent.sock, wfd)
                os.close(wfd)
                os.set_blocking(rfd, False)
                children[pid] = (s.name, k, rfd)
                running[s.name] = pid
                buffers[rfd] = b""
                sel.register(rfd, selectors.EVENT_READ)
            wait = 0.05
            if runs:
                wait = max(0.0, min(wait, t0 + runs[0][0] / args.factor - 0.25 - now))
            if not children:
                time.sleep(wait)
            for key, _ in sel.select(wait) if children else []:
                fd = key.fd
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if data:
                    buffers[fd] += data
                    *lines, buffers[fd] = buffers[fd].split(b"\n")
                    for line in lines:
                        rec = json.loads(line)
                        if "fatal" in rec:
                            raise Broken(f"a service process failed: {rec['fatal']}")
                        results[rec["i"]] = rec
                else:
                    sel.unregister(fd)
            for pid, (svc, k, rfd) in list(children.items()):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done == 0:
                    continue
                # Drain what is left in its pipe.
                while True:
                    try:
                        data = os.read(rfd, 65536)
                    except BlockingIOError:
                        break
                    if not data:
                        break
                    buffers[rfd] += data
                for line in buffers.pop(rfd).split(b"\n"):
                    if line.strip():
                        rec = json.loads(line)
                        if "fatal" in rec:
                            raise Broken(f"{svc} run {k}: {rec['fatal']}")
                        results[rec["i"]] = rec
                try:
                    sel.unregister(rfd)
                except KeyError:
                    pass
                os.close(rfd)
                del children[pid]
                del running[svc]
                if os.waitstatus_to_exitcode(status) != 0:
                    raise Broken(f"{svc} run {k}: its process exited {os.waitstatus_to_exitcode(status)}")
        elapsed = time.monotonic() - t0
        time.sleep(0.5 + latency_ms / 1000.0)  # fetches begun by the last reads complete
        metrics = agent.metrics()
        log = emulator.admin("GET", "requests")["requests"]
        titles = emulator.item_titles()
        missing = [i for i in range(len(trace.reads)) if i not in results]
        if missing:
            raise Broken(f"{len(missing)} reads have no result")
        out = measure(trace, results, metrics, log, titles)
        out.update({"name": name, "latency_ms": latency_ms, "prediction": predict,
                    "replay_seconds": round(elapsed, 1)})
        return out
    except Broken:
        if agent is not None:
            print(f"[{name}] agent log: {agent.log_path}\n{tail(agent.log_path)}", file=sys.stderr)
        raise
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        sel.close()
        if agent is not None:
            agent.stop()
        if emulator is not None:
            emulator.stop()
        if args.keep:
            print(f"[{name}] kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------- figures

def percentile(values: list, p: float):
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    v = sorted(values)
    return round(v[max(0, math.ceil(p / 100.0 * len(v)) - 1)], 2)


def klass(r: tracegen.Read) -> str:
    if r.cls == "startup" and r.run_first and r.run > 0:
        return "restart-first"
    return r.cls


ITEM_GET = "item"


def upstream_kind(entry: dict) -> str:
    parts = [p for p in entry["path"].split("/") if p]
    if entry["method"] != "GET" or not parts or parts[0] != "v1":
        return "other"
    if len(parts) == 5 and parts[1] == "vaults" and parts[3] == "items":
        return ITEM_GET
    if len(parts) == 4 and parts[3] == "items":
        return "item-list"
    if len(parts) == 2 and parts[1] == "vaults":
        return "vault-list"
    return "other-v1"


def ref_kind(title: str) -> str:
    """What a trace reference is for, from its item's title (svcN-<kind><n>)."""
    name = title.split("-", 1)[-1]
    if name.startswith("chain"):
        return "chain-head" if name.endswith("a") else "chain-step"
    return {"hot": "hot", "start": "start-up only", "cron": "periodic", "misc": "noise only"}.get(
        name.rstrip("0123456789"), "other")


def measure(trace: tracegen.Trace, results: dict, metrics: dict, log: list, titles: dict) -> dict:
    reads = trace.reads
    res = [results[i] for i in range(len(reads))]
    failed = [(reads[i], r) for i, r in enumerate(res) if r["status"] != 200]

    def rate(idx: list):
        if not idx:
            return None
        return round(100.0 * sum(res[i]["cache"] in HIT_STATES for i in idx) / len(idx), 2)

    every = list(range(len(reads)))
    predictable = [i for i in every if reads[i].predictable]
    later = [i for i in predictable if reads[i].run > 0]
    classes: dict = {}
    for i in predictable:
        classes.setdefault(klass(reads[i]), []).append(i)
    noise = [i for i in every if reads[i].cls == "noise"]

    counts: dict = {}
    for e in log:
        k = upstream_kind(e)
        counts[k] = counts.get(k, 0) + 1
    item_gets = counts.get(ITEM_GET, 0)
    v1_calls = sum(v for k, v in counts.items() if k != "other")
    needed = tracegen.needed_fetches(reads, trace.params.ttl)
    # Item fetches and the fetches needed, by what the reference is for.
    by_ref_kind: dict = {}
    for e in log:
        if upstream_kind(e) == ITEM_GET:
            k = ref_kind(titles.get(e["path"].strip("/").split("/")[4], "?"))
            by_ref_kind.setdefault(k, {"fetched": 0, "needed": 0})["fetched"] += 1
    for ref in {r.ref for r in reads}:
        k = ref_kind(ref.split("/")[3])
        by_ref_kind.setdefault(k, {"fetched": 0, "needed": 0})["needed"] += tracegen.needed_fetches(
            [r for r in reads if r.ref == ref], trace.params.ttl)

    prefetch: dict = {}
    for labels, value in metrics.get("chitty_prefetches_total", {}).items():
        d = dict(labels)
        prefetch.setdefault(d.get("kind", "?"), {})[d.get("outcome", "?")] = int(value)
    for kind, c in prefetch.items():
        c["unresolved"] = c.get("issued", 0) - c.get("used", 0) - c.get("wasted", 0) - c.get("failed", 0)

    def total(name: str):
        m = metrics.get(name)
        return int(sum(m.values())) if m else None

    return {
        "reads": len(reads), "predictable_reads": len(predictable), "noise_reads": len(noise),
        "first_reads": sum(r.first_ever for r in reads), "failed_reads": len(failed),
        "failures": [{"t": r.t, "service": r.service, "ref": r.ref, "status": x["status"],
                      "error": x.get("error", "")} for r, x in failed[:10]],
        "hit_rate_all": rate(every), "hit_rate_predictable": rate(predictable),
        "hit_rate_predictable_after_first_run": rate(later),
        "hit_rate_noise": rate(noise),
        "hit_rate_by_class": {k: {"reads": len(v), "hit_rate": rate(v),
                                  "misses": sum(res[i]["cache"] not in HIT_STATES for i in v)}
                              for k, v in sorted(classes.items())},
        "p50_ms_predictable": percentile([res[i]["lat_ms"] for i in predictable], 50),
        "p99_ms_predictable": percentile([res[i]["lat_ms"] for i in predictable], 99),
        "p50_ms_all": percentile([x["lat_ms"] for x in res], 50),
        "p99_ms_all": percentile([x["lat_ms"] for x in res], 99),
        "max_ms_all": round(max(x["lat_ms"] for x in res), 2),
        "late_p99_ms": percentile([x["late_ms"] for x in res], 99),
        "upstream_item_fetches": item_gets, "needed_fetches": needed,
        "fetches_over_needed": round(item_gets / needed, 3) if needed else None,
        "fetches_by_reference_kind": dict(sorted(by_ref_kind.items())),
        "upstream_v1_calls": v1_calls, "upstream_calls_by_kind": counts,
        "item_fetches_per_read": round(item_gets / len(reads), 4),
        "upstream_calls_per_read": round(v1_calls / len(reads), 4),
        "agent_upstream_fetches": total("chitty_upstream_fetches_total"),
        "prefetches": prefetch,
    }


# ---------------------------------------------------------------- report

def fmt(v, suffix: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}{suffix}" if abs(v) < 100 else f"{v:.1f}{suffix}"
    return f"{v}{suffix}"


def table(results: list, trace: tracegen.Trace) -> str:
    cols = [r["name"] for r in results]
    rows = []

    def row(label: str, key, suffix: str = "") -> None:
        rows.append([label] + [fmt(key(r) if callable(key) else r.get(key), suffix) for r in results])

    row("hit rate, all reads", "hit_rate_all", "%")
    row("hit rate, predictable reads", "hit_rate_predictable", "%")
    row("  ... in runs 2-3 (after a restart)", "hit_rate_predictable_after_first_run", "%")
    kinds = sorted({k for r in results for k in r["hit_rate_by_class"]})
    for k in kinds:
        row(f"  {k} ({results[0]['hit_rate_by_class'].get(k, {}).get('reads', 0)} reads): misses",
            lambda r, k=k: r["hit_rate_by_class"].get(k, {}).get("misses"))
    row("hit rate, noise reads", "hit_rate_noise", "%")
    row("p50 latency, predictable (ms)", "p50_ms_predictable")
    row("p99 latency, predictable (ms)", "p99_ms_predictable")
    row("p50 latency, all (ms)", "p50_ms_all")
    row("p99 latency, all (ms)", "p99_ms_all")
    row("upstream item fetches", "upstream_item_fetches")
    row("  needed (TTL, greedy)", "needed_fetches")
    row("  fetches / needed", "fetches_over_needed", "x")
    rkinds = sorted({k for r in results for k in r["fetches_by_reference_kind"]})
    for k in rkinds:
        row(f"  {k} references: fetched/needed",
            lambda r, k=k: "/".join(str(r["fetches_by_reference_kind"].get(k, {}).get(x, 0))
                                    for x in ("fetched", "needed")))
    row("upstream /v1 calls (incl. name lookups)", "upstream_v1_calls")
    row("upstream calls per caller read", "upstream_calls_per_read")
    row("item fetches per caller read", "item_fetches_per_read")
    pkinds = sorted({k for r in results for k in r["prefetches"]})
    for k in pkinds:
        row(f"prefetch {k}: issued/used/wasted/unresolved/skipped",
            lambda r, k=k: "/".join(str(r["prefetches"].get(k, {}).get(o, 0))
                                    for o in ("issued", "used", "wasted", "unresolved", "skipped"))
            if r["prediction"] else None)
    row("failed reads", "failed_reads")
    row("schedule lateness p99 (ms)", "late_p99_ms")

    width = max(len(r[0]) for r in rows)
    colw = [max(len(c), max(len(r[j + 1]) for r in rows)) for j, c in enumerate(cols)]
    out = [" " * width + "  " + "  ".join(c.rjust(w) for c, w in zip(cols, colw))]
    for r in rows:
        out.append(r[0].ljust(width) + "  " + "  ".join(v.rjust(w) for v, w in zip(r[1:], colw)))
    return "\n".join(out)


def targets(results: list) -> list:
    on = [r for r in results if r["prediction"]]
    out = []
    for r in on:
        hr = r["hit_rate_predictable"]
        out.append({"target": f"{r['name']}: hit rate over predictable reads >= 99%",
                    "value": f"{hr:.2f}%", "met": hr >= 99.0})
    for r in results:
        ratio = r["fetches_over_needed"]
        out.append({"target": f"{r['name']}: upstream item fetches <= 1.2 x needed",
                    "value": f"{r['upstream_item_fetches']} / {r['needed_fetches']} = {ratio:.2f}x",
                    "met": ratio <= 1.2})
    if len(on) >= 2:
        a, b = on[0], on[-1]
        d = b["p99_ms_predictable"] - a["p99_ms_predictable"]
        out.append({"target": f"on-p99 over predictable reads the same at {a['latency_ms']} and "
                              f"{b['latency_ms']} ms (within {P99_SAME_MS:.0f} ms)",
                    "value": f"{a['p99_ms_predictable']:.2f} vs {b['p99_ms_predictable']:.2f} ms "
                             f"(difference {d:+.2f} ms)",
                    "met": abs(d) <= P99_SAME_MS})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agent", default=os.path.join(SOURCE_ROOT, "build/agent/chitty-agent"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--minutes", type=float, default=None, help="trace minutes (default 45; --short 6)")
    ap.add_argument("--factor", type=float, default=20.0, help="time compression (default 20)")
    ap.add_argument("--latency", default=None, help="upstream latencies in ms (default 80,400; --short 80)")
    ap.add_argument("--short", action="store_true", help="CI: 6 trace-minutes, 80 ms only, no JSON by default")
    ap.add_argument("--json", default=None, help="where to write the results "
                    "(default bench/results/predict-replay.json; none with --short)")
    ap.add_argument("--resolution-ttl", type=float, default=600.0,
                    help="the agent's resolution_ttl in trace seconds (default 600: 10 min, scaled)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directories (logs, configs)")
    args = ap.parse_args()
    minutes = args.minutes if args.minutes is not None else (6.0 if args.short else 45.0)
    latencies = [int(x) for x in (args.latency or ("80" if args.short else "80,400")).split(",")]
    json_path = args.json
    if json_path is None and not args.short:
        json_path = os.path.join(SOURCE_ROOT, "bench/results/predict-replay.json")

    if os.geteuid() != 0:
        print("predict replay: needs root (each service's runs are processes set to the service's uid); "
              "skipped", file=sys.stderr)
        return 77
    if not os.access(args.agent, os.X_OK):
        print(f"predict replay: no agent executable at {args.agent} (ninja -C build agent/chitty-agent)",
              file=sys.stderr)
        return 1
    node = os.environ.get("CHITTY_NODE") or shutil.which("node")
    if not node:
        print("predict replay: node not found (scripts/install-deps.sh installs it)", file=sys.stderr)
        return 1

    # Trace seconds. Windows cover a start-up (up to 4 gaps of 25 s) and a
    # chain step (25 s); the periodic lead (2 s real) leaves room for a fetch
    # at 400 ms once divided by the factor.
    windows = {"startup_window": 120.0, "coaccess_window": 30.0, "periodic_lead": 40.0,
               "resolution_ttl": args.resolution_ttl}
    trace = tracegen.generate(tracegen.Params(seed=args.seed, minutes=minutes))

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)

    wall = time.monotonic()
    results = []
    try:
        for latency in latencies:
            for predict in (False, True):
                r = replay(trace, args, latency, predict, node, windows)
                results.append(r)
                print(f"[{r['name']}] done in {r['replay_seconds']} s: predictable hit rate "
                      f"{r['hit_rate_predictable']}%, p99 {r['p99_ms_predictable']} ms",
                      file=sys.stderr, flush=True)
    except Broken as e:
        print(f"predict replay: BROKEN: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        print(f"predict replay: interrupted ({e})", file=sys.stderr)
        return 1
    wall = time.monotonic() - wall

    s = tracegen.summary(trace)
    print(f"trace: seed {args.seed}, {minutes:g} trace-minutes compressed {args.factor:g}x "
          f"({trace.duration / args.factor:.0f} s per configuration), {len(trace.services)} services x "
          f"{trace.params.runs} runs; {s['reads']} reads: {s['predictable']} predictable, {s['noise']} noise, "
          f"{s['first_ever']} first reads; TTL {trace.params.ttl / args.factor:g} s real")
    print(f"agent: startup_window {windows['startup_window'] / args.factor:g} s, coaccess_window "
          f"{windows['coaccess_window'] / args.factor:g} s, periodic_lead {windows['periodic_lead'] / args.factor:g} s,"
          f" resolution_ttl {windows['resolution_ttl'] / args.factor:g} s (real)")
    print()
    print(table(results, trace))
    print()
    tg = targets(results)
    print("targets:")
    for t in tg:
        print(f"  [{'met' if t['met'] else 'NOT MET'}] {t['target']}: {t['value']}")
    print(f"\nwall time {wall:.0f} s")

    if json_path:
        os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
        doc = {"generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "command": " ".join([os.path.relpath(sys.argv[0], SOURCE_ROOT)] + sys.argv[1:]),
               "host": platform.node(), "wall_seconds": round(wall, 1),
               "trace": {"seed": args.seed, "minutes": minutes, "factor": args.factor, **s},
               "windows_trace_seconds": windows, "configurations": results, "targets": tg}
        with open(json_path, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        print(f"wrote {json_path}")

    broken = []
    for r in results:
        if r["failed_reads"]:
            broken.append(f"{r['name']}: {r['failed_reads']} reads failed, e.g. {r['failures'][0]}")
    for latency in latencies:
        off = next(r for r in results if r["latency_ms"] == latency and not r["prediction"])
        on = next(r for r in results if r["latency_ms"] == latency and r["prediction"])
        if not on["hit_rate_predictable"] > off["hit_rate_predictable"]:
            broken.append(f"@{latency} ms: prediction on does not raise the hit rate over predictable reads "
                          f"({on['hit_rate_predictable']}% vs {off['hit_rate_predictable']}% off)")
    for b in broken:
        print(f"BROKEN: {b}", file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
