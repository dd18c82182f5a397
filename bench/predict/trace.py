#!/usr/bin/env python3
"""Synthetic access trace of several services, for the prediction replay.

Times are trace seconds (before compression). Deterministic for a seed.

  python3 bench/predict/trace.py --seed 1 [--minutes 45] [--summary]

prints the trace as JSON lines: one header object (parameters, services,
their runs and references), then one object per read in time order:

  {"t": 312.4, "service": "svc2", "run": 1, "ref": "op://Bench/svc2-hot1/credential",
   "class": "hot", "first_ever": false, "run_first": false, "predictable": true}

Each service (uid 61001 + i) runs three times (start, restart, restart), a new
process each time, and reads:

- its start-up set (3-5 references, 15-25 s apart, the same order every run;
  its hot references are among them) when a run starts;
- 1-2 hot references steadily but irregularly (every 10-40 s);
- 1-2 co-access chains of 2-3 references (B 15-25 s after A with p 0.9, then C
  15-25 s after B with p 0.9), each started at random (exponential gaps);
- 1-3 periodic references, each every 2-10 min on the trace's clock (a job
  anchored to the wall clock, like cron: a read that falls while the service
  is restarting does not happen);
- noise: 10% of all reads, uniformly over every reference it may read (its own
  and 2-4 it reads only by chance).

Classes: startup, hot, chain-head, chain-step, periodic, noise. `first_ever`:
the first read of the reference in the whole trace; `run_first`: the first
read of a run (the read that tells the agent the service restarted).
`predictable` = not noise and not first_ever.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys

VAULT = "Bench"
FIELD = "credential"
FIRST_UID = 61001


@dataclasses.dataclass
class Params:
    seed: int = 1
    minutes: float = 45.0          # trace length
    services: int = 6
    runs: int = 3                  # start + restarts
    ttl: float = 300.0             # cache TTL (for 'needed' fetches)
    startup_size: tuple = (3, 5)
    step_gap: tuple = (15.0, 25.0)  # between start-up reads and chain steps
    hot_refs: tuple = (1, 2)
    hot_gap: tuple = (10.0, 40.0)
    chains: tuple = (1, 2)
    chain_len: tuple = (2, 3)
    chain_p: float = 0.9
    chain_mean_gap: float = 120.0  # mean time between a chain's episodes
    periodic_refs: tuple = (1, 3)
    period: tuple = (120, 600)
    noise: float = 0.10
    extra_refs: tuple = (2, 4)
    restart_gap: tuple = (10.0, 30.0)
    run_end_margin: float = 5.0    # no read this close to a run's end


@dataclasses.dataclass
class Read:
    t: float
    service: str
    run: int
    ref: str
    cls: str
    first_ever: bool = False
    run_first: bool = False

    @property
    def predictable(self) -> bool:
        return self.cls != "noise" and not self.first_ever

    def as_dict(self) -> dict:
        return {"t": round(self.t, 3), "service": self.service, "run": self.run, "ref": self.ref,
                "class": self.cls, "first_ever": self.first_ever, "run_first": self.run_first,
                "predictable": self.predictable}


@dataclasses.dataclass
class Service:
    name: str
    uid: int
    startup: list          # start-up order (includes the hot references)
    hot: list
    chains: list           # lists of references
    periodic: list         # [(ref, period, phase)]
    extra: list
    runs: list             # [(start, end)]

    @property
    def allowed(self) -> list:
        refs = list(self.startup)
        for c in self.chains:
            refs += c
        refs += [p[0] for p in self.periodic] + self.extra
        return sorted(set(refs))

    def as_dict(self) -> dict:
        return {"name": self.name, "uid": self.uid, "startup": self.startup, "hot": self.hot,
                "chains": self.chains,
                "periodic": [{"ref": r, "period": p, "phase": round(ph, 3)} for r, p, ph in self.periodic],
                "extra": self.extra, "allowed": self.allowed,
                "runs": [[round(a, 3), round(b, 3)] for a, b in self.runs]}


@dataclasses.dataclass
class Trace:
    params: Params
    services: list
    reads: list            # sorted by t

    @property
    def duration(self) -> float:
        return self.params.minutes * 60.0

    def header(self) -> dict:
        return {"params": dataclasses.asdict(self.params), "duration": self.duration,
                "services": [s.as_dict() for s in self.services], "reads": len(self.reads),
                "needed_fetches": needed_fetches(self.reads, self.params.ttl)}


def ref_of(service: str, item: str) -> str:
    return f"op://{VAULT}/{service}-{item}/{FIELD}"


def needed_fetches(reads: list, ttl: float) -> int:
    """The fewest upstream fetches that serve every read fresh: per reference,
    greedily, a fetch at a read that comes more than `ttl` after the last one."""
    last: dict = {}
    needed = 0
    for r in sorted(reads, key=lambda r: r.t):
        at = last.get(r.ref)
        if at is None or r.t - at > ttl:
            needed += 1
            last[r.ref] = r.t
    return needed


def generate(p: Params) -> Trace:
    rng = random.Random(p.seed)
    duration = p.minutes * 60.0
    services = []
    reads = []
    for i in range(p.services):
        name = f"svc{i + 1}"
        hot = [ref_of(name, f"hot{k + 1}") for k in range(rng.randint(*p.hot_refs))]
        size = max(rng.randint(*p.startup_size), len(hot) + 1)
        startup = hot + [ref_of(name, f"start{k + 1}") for k in range(size - len(hot))]
        rng.shuffle(startup)
        chains = [[ref_of(name, f"chain{c + 1}{'abc'[k]}") for k in range(rng.randint(*p.chain_len))]
                  for c in range(rng.randint(*p.chains))]
        periodic = []
        for k in range(rng.randint(*p.periodic_refs)):
            period = rng.randint(*p.period)
            periodic.append((ref_of(name, f"cron{k + 1}"), period, rng.uniform(0, period)))
        extra = [ref_of(name, f"misc{k + 1}") for k in range(rng.randint(*p.extra_refs))]

        # Runs: start, then restarts near a third and two thirds of the trace.
        bounds = [rng.uniform(0, 30)]
        for k in range(1, p.runs):
            share = k / p.runs
            bounds.append(duration * rng.uniform(share - 0.04, share + 0.04))
        runs = []
        for k in range(p.runs):
            start = bounds[k] if k == 0 else bounds[k] + rng.uniform(*p.restart_gap)
            end = bounds[k + 1] if k + 1 < p.runs else duration
            runs.append((start, end))
        svc = Service(name, FIRST_UID + i, startup, hot, chains, periodic, extra, runs)
        services.append(svc)

        for run, (start, end) in enumerate(runs):
            last = end - p.run_end_margin
            mine = []
            t = start
            startup_at = {}
            for ref in startup:
                mine.append(Read(t, name, run, ref, "startup"))
                startup_at[ref] = t
                t += rng.uniform(*p.step_gap)
            startup_end = t
            for ref in hot:
                t = startup_at[ref] + rng.uniform(*p.hot_gap)
                while t < last:
                    mine.append(Read(t, name, run, ref, "hot"))
                    t += rng.uniform(*p.hot_gap)
            for ref, period, phase in periodic:
                k = 0
                while phase + k * period < last:
                    t = phase + k * period
                    if t >= start:
                        mine.append(Read(t, name, run, ref, "periodic"))
                    k += 1
            for chain in chains:
                t = startup_end + rng.expovariate(1.0 / p.chain_mean_gap)
                while t < last:
                    mine.append(Read(t, name, run, chain[0], "chain-head"))
                    s = t
                    for ref in chain[1:]:
                        if rng.random() >= p.chain_p:
                            break
                        s += rng.uniform(*p.step_gap)
                        if s >= last:
                            break
                        mine.append(Read(s, name, run, ref, "chain-step"))
                    t += rng.expovariate(1.0 / p.chain_mean_gap)
            # Noise: p.noise of all reads, so noise = others * p / (1 - p).
            allowed = svc.allowed
            for _ in range(round(len(mine) * p.noise / (1.0 - p.noise))):
                mine.append(Read(rng.uniform(startup_end, last), name, run, rng.choice(allowed), "noise"))
            mine.sort(key=lambda r: r.t)
            mine[0].run_first = True
            reads += mine

    reads.sort(key=lambda r: (r.t, r.service))
    seen = set()
    for r in reads:
        if r.ref not in seen:
            r.first_ever = True
            seen.add(r.ref)
    return Trace(p, services, reads)


def summary(trace: Trace) -> dict:
    by_class: dict = {}
    for r in trace.reads:
        by_class[r.cls] = by_class.get(r.cls, 0) + 1
    return {"reads": len(trace.reads), "by_class": by_class,
            "predictable": sum(r.predictable for r in trace.reads),
            "noise": by_class.get("noise", 0),
            "first_ever": sum(r.first_ever for r in trace.reads),
            "needed_fetches": needed_fetches(trace.reads, trace.params.ttl)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--minutes", type=float, default=45.0, help="trace length in trace minutes (default 45)")
    ap.add_argument("--summary", action="store_true", help="print only counts")
    a = ap.parse_args()
    trace = generate(Params(seed=a.seed, minutes=a.minutes))
    if a.summary:
        print(json.dumps(summary(trace), indent=2))
        return 0
    out = sys.stdout
    out.write(json.dumps(trace.header()) + "\n")
    for r in trace.reads:
        out.write(json.dumps(r.as_dict()) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
