#!/usr/bin/env python3
"""The benchmark's scenarios beyond steady load (bench/run.sh, docs/performance.md).

  scenarios.py secrets AGENT [--count 10000]
      10,000 env-backed secrets, each read once (cached): the agent's RSS and
      locked bytes before and after.
  scenarios.py idle AGENT [--count 5000] [--seconds 5]
      a legitimate caller's latency (one keep-alive connection, cached
      retrievals) alone, then while COUNT idle connections are held open.
  scenarios.py misses AGENT CONNECT_EMULATOR [--count 1000]
      COUNT connections ask at once for one reference the agent has not
      cached: how many upstream fetches that made (single-flight: one).

Each starts its own agent (pinned with taskset by the caller if wanted) in a
temporary directory and stops it. Prints one line of key=value figures.
"""
import argparse
import json
import os
import resource
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time

REF = "op://ChittyOS Integrations/OpenAI API/api_key"


def request(sock_path, path, timeout=30):
    """One GET over a new connection; (status, body)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock_path)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def health(sock_path):
    return json.loads(request(sock_path, "/health")[1])


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def quote(ref):
    return ref.replace(" ", "%20")


class Agent:
    def __init__(self, binary, config_rest, env=None, settings=""):
        self.dir = tempfile.mkdtemp(prefix="chitty-scenario.")
        self.sock = os.path.join(self.dir, "agent.sock")
        with open(os.path.join(self.dir, "agent.toml"), "w") as f:
            f.write(f'[agent]\nsocket = "{self.sock}"\nstate_dir = "{self.dir}/state"\n'
                    f"max_requests_per_connection = 1000000000\n{settings}\n{config_rest}")
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.log = open(os.path.join(self.dir, "agent.log"), "w")
        self.proc = subprocess.Popen(
            ["taskset", "-c", os.environ.get("SERVER_CPU", "1"), binary, "--config", os.path.join(self.dir, "agent.toml")],
            env=full_env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        for _ in range(500):
            if os.path.exists(self.sock):
                break
            if self.proc.poll() is not None:
                raise SystemExit(f"the agent exited: {open(os.path.join(self.dir, 'agent.log')).read()[-2000:]}")
            time.sleep(0.01)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def service(allow):
    return (f'[[service]]\nname = "bench"\nuid = {os.getuid()}\nallow = {json.dumps(allow)}\n'
            'rate_limit = "1000000000/h"\n')


def secrets(args):
    n = args.count
    env = {}
    catalog = []
    for i in range(n):
        name = f"BENCH_SECRET_{i}"
        env[name] = f"bench-value-{i:06d}-" + "x" * 20  # 40 bytes
        catalog.append(f'[[credential]]\ntype = "t{i}"\nref = "op://Bench/item{i}/value"\nenv = "{name}"\n')
    agent = Agent(args.agent, "".join(catalog) + service(["op://Bench/**"]), env,
                  settings=f"\n[cache]\nmax_entries = {n}\n")
    try:
        h0 = health(agent.sock)
        rss0 = rss_kib(agent.proc.pid)
        t0 = time.monotonic()
        for i in range(n):
            status, _ = request(agent.sock, "/v1/secret?ref=" + quote(f"op://Bench/item{i}/value"))
            if status != 200:
                raise SystemExit(f"secret {i}: HTTP {status}")
        elapsed = time.monotonic() - t0
        h1 = health(agent.sock)
        rss1 = rss_kib(agent.proc.pid)
        print(f"secrets={n} cached={h1['cache']['entries']} rss_kib_before={rss0} rss_kib_after={rss1} "
              f"rss_mib_after={rss1 / 1024:.1f} locked_bytes_used={h1['memory']['locked_bytes_used']} "
              f"sealed_bytes={h1['cache']['sealed_bytes']} backing={h1['memory']['backing']} "
              f"first_reads_per_s={n / elapsed:.0f} locked_bytes_before={h0['memory']['locked_bytes_used']}")
    finally:
        agent.stop()


def latencies(sock_path, seconds):
    """A legitimate caller: one keep-alive connection, sequential cached retrievals."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    req = f"GET /v1/secret?ref={quote(REF)} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    out = []
    end = time.monotonic() + seconds
    buf = b""
    while time.monotonic() < end:
        t = time.perf_counter()
        s.sendall(req)
        while True:
            head_end = buf.find(b"\r\n\r\n")
            if head_end >= 0:
                cl = 0
                for line in buf[:head_end].split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        cl = int(line.split(b":")[1])
                if len(buf) >= head_end + 4 + cl:
                    buf = buf[head_end + 4 + cl:]
                    break
            buf += s.recv(65536)
        out.append((time.perf_counter() - t) * 1e6)
    s.close()
    out.sort()
    return out


def pct(v, p):
    return v[min(len(v) - 1, int(p * (len(v) - 1)))]


def idle(args):
    n = args.count
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1024), hard))
    agent = Agent(args.agent,
                  f'[[credential]]\ntype = "openai_api_key"\nref = "{REF}"\nenv = "OPENAI_API_KEY"\n' +
                  service(["type:openai_api_key"]),
                  {"OPENAI_API_KEY": "sk-bench-" + "0" * 191},
                  settings=f"max_connections = {n + 64}\nmax_connections_per_uid = {n + 64}\n"
                           "idle_timeout = \"10m\"\n")
    try:
        request(agent.sock, "/v1/secret?ref=" + quote(REF))  # the one miss
        alone = latencies(agent.sock, args.seconds)
        rss_alone = rss_kib(agent.proc.pid)
        held = []
        for _ in range(n):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(agent.sock)
            held.append(s)
        time.sleep(0.5)
        h = health(agent.sock)
        crowded = latencies(agent.sock, args.seconds)
        rss_crowded = rss_kib(agent.proc.pid)
        for s in held:
            s.close()
        p99a, p99c = pct(alone, 0.99), pct(crowded, 0.99)
        print(f"idle_connections={n} agent_connections={h['server']['connections']} "
              f"alone_p50_us={pct(alone, 0.5):.0f} alone_p99_us={p99a:.0f} "
              f"crowded_p50_us={pct(crowded, 0.5):.0f} crowded_p99_us={p99c:.0f} p99_change={(p99c / p99a - 1) * 100:+.1f}% "
              f"rss_kib_alone={rss_alone} rss_kib_crowded={rss_crowded} "
              f"kib_per_idle_connection={(rss_crowded - rss_alone) / n:.2f}")
    finally:
        agent.stop()


def misses(args):
    n = args.count
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1024), hard))
    work = tempfile.mkdtemp(prefix="chitty-misses.")
    port_file = os.path.join(work, "port")
    emulator = subprocess.Popen(
        ["node", args.emulator, "--fixtures", os.path.join(os.path.dirname(args.emulator), "fixtures", "chittyos.json"),
         "--port-file", port_file, "--quiet"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    agent = None
    try:
        for _ in range(500):
            if os.path.exists(port_file) and open(port_file).read().strip():
                break
            time.sleep(0.01)
        port = int(open(port_file).read())
        token = os.path.join(work, "token")
        with open(token, "w") as f:
            f.write("good-token\n")
        os.chmod(token, 0o600)
        agent = Agent(args.agent,
                      f'[upstream.onepassword]\nurl = "http://127.0.0.1:{port}"\ntoken_file = "{token}"\n' +
                      service(["op://**"]),
                      settings=f"max_connections = {n + 64}\nmax_connections_per_uid = {n + 64}\n")
        before = health(agent.sock)["cache"]["fetches"]
        req = f"GET /v1/secret?ref={quote(REF)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        conns = []
        for _ in range(n):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(agent.sock)
            conns.append(s)
        t0 = time.monotonic()
        for s in conns:
            s.sendall(req)
        sel = selectors.DefaultSelector()
        for s in conns:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, [b""])
        statuses = {}
        done = 0
        while done < n:
            for key, _ in sel.select(timeout=30):
                try:
                    chunk = key.fileobj.recv(65536)
                except BlockingIOError:
                    continue
                if chunk:
                    key.data[0] += chunk
                    continue
                status = int(key.data[0].split(b" ", 2)[1]) if key.data[0] else 0
                statuses[status] = statuses.get(status, 0) + 1
                sel.unregister(key.fileobj)
                key.fileobj.close()
                done += 1
        elapsed = time.monotonic() - t0
        after = health(agent.sock)["cache"]["fetches"]
        print(f"concurrent_misses={n} upstream_fetches={after - before} statuses={json.dumps(statuses, separators=(',', ':'))} "
              f"all_answered_ms={elapsed * 1000:.0f}")
    finally:
        if agent:
            agent.stop()
        emulator.terminate()
        emulator.wait()
        shutil.rmtree(work, ignore_errors=True)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("secrets"); a.add_argument("agent"); a.add_argument("--count", type=int, default=10000)
    b = sub.add_parser("idle"); b.add_argument("agent"); b.add_argument("--count", type=int, default=5000)
    b.add_argument("--seconds", type=float, default=5)
    c = sub.add_parser("misses"); c.add_argument("agent"); c.add_argument("emulator")
    c.add_argument("--count", type=int, default=1000)
    args = p.parse_args()
    {"secrets": secrets, "idle": idle, "misses": misses}[args.cmd](args)


if __name__ == "__main__":
    main()
