#!/usr/bin/env python3
# LoadCredential= round trips against a running agent, made as systemd's
# helper makes them: as root, from inside the unit's cgroup (made in the
# name=systemd hierarchy, as on this project's test machines), bound to
# "\0<hex>/unit/<unit>/<ID>", connect, half-close, read until EOF or past
# systemd's 1 MiB limit (where it gives up on a refused request).
#
#   sudo bench/load_credential.py SOCKET UNIT ID COUNT
#
# Prints the median and p99 round trip and the sequential rate
# (docs/systemd.md quotes it). Not for a host that runs systemd as PID 1: it
# makes (and removes) the unit's cgroup itself.
import os, socket, sys, time, statistics
sock, unit, cid, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
root = "/sys/fs/cgroup/systemd"
d = f"{root}/system.slice/{unit}"
os.makedirs(d, exist_ok=True)
with open(f"{d}/cgroup.procs", "w") as f:
    f.write(str(os.getpid()))
lat = []
for i in range(n):
    t = time.perf_counter()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind("\0" + f"{i:x}/unit/{unit}/{cid}")
    s.connect(sock)
    s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
        if len(data) > 1048576:  # systemd's CREDENTIAL_SIZE_MAX: it gives up here
            break
    s.close()
    lat.append(time.perf_counter() - t)
with open(f"{root}/cgroup.procs", "w") as f:
    f.write(str(os.getpid()))
os.rmdir(d)
lat.sort()
print(f"{n} LoadCredential= round trips, {len(data)} bytes each: median {statistics.median(lat)*1e6:.0f} us, "
      f"p99 {lat[int(n*0.99)-1]*1e6:.0f} us, {n/sum(lat):.0f}/s sequential")
