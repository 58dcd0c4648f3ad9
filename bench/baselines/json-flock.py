#!/usr/bin/env python3
"""Baseline for the embedded ledger: a JSON ledger file serialised with flock(2).

Each operation: flock(LOCK_EX) on ledger.lock -> read and parse ledger.json -> decide (reserve:
sum the active grants and check the request fits; release: drop the grant) -> write the whole
ledger to a temp file and rename it over ledger.json (atomic replace; with "fsync": fsync the
file and the directory first, which is what a durable version needs) -> flock(LOCK_UN).
A pair is one reserve plus one release, like rrm's. It keeps only the active grants: no history,
no queue, no leases, no events. Same line protocol as the node workers: prints {"ready":true},
waits for "go", runs for durationMs, prints {"pairs", "errors", "lat"} (lat: ms per pair).
argv[1]: {"dir": ..., "durationMs": n, "fsync": bool}
"""
import fcntl
import json
import os
import sys
import time

args = json.loads(sys.argv[1])
d = args["dir"]
durable = bool(args.get("fsync"))
ledger_path = os.path.join(d, "ledger.json")
tmp_path = os.path.join(d, "ledger.json.%d.tmp" % os.getpid())
lock_fd = os.open(os.path.join(d, "ledger.lock"), os.O_RDWR | os.O_CREAT, 0o644)
dir_fd = os.open(d, os.O_RDONLY)
pid = os.getpid()


def transact(decide):
    fcntl.flock(lock_fd, fcntl.LOCK_EX)
    try:
        with open(ledger_path, "rb") as f:
            ledger = json.loads(f.read())
        result = decide(ledger)
        data = json.dumps(ledger).encode()
        with open(tmp_path, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.rename(tmp_path, ledger_path)
        if durable:
            os.fsync(dir_fd)
        return result
    finally:
        fcntl.flock(lock_fd, fcntl.LOCK_UN)


def reserve(ledger):
    used_cpu = 0
    used_mem = 0
    for g in ledger["grants"].values():
        used_cpu += g["cpu"]
        used_mem += g["memory"]
    alloc = ledger["allocatable"]
    if used_cpu + 10 > alloc["cpu"] or used_mem + 1048576 > alloc["memory"]:
        return None
    ledger["seq"] += 1
    gid = "g%d-%d" % (pid, ledger["seq"])
    ledger["grants"][gid] = {
        "cpu": 10,
        "memory": 1048576,
        "holder": pid,
        "priority": 500,
        "grantedAt": int(time.time() * 1000),
    }
    return gid


def io_counters():
    try:
        with open("/proc/self/io") as f:
            kv = dict(line.split(": ") for line in f.read().splitlines())
        return int(kv["wchar"]), int(kv["syscw"])
    except OSError:
        return 0, 0


def pair():
    gid = transact(reserve)
    if gid is None:
        raise RuntimeError("not granted")
    transact(lambda ledger: ledger["grants"].pop(gid, None))


pair()
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    if line.strip() != "go":
        continue
    lat = []
    pairs = 0
    errors = 0
    wchar0, syscw0 = io_counters()
    start = time.perf_counter()
    end = start + args["durationMs"] / 1000.0
    t = start
    while t < end:
        try:
            pair()
            pairs += 1
        except Exception:  # noqa: BLE001 - counted, like the node worker
            errors += 1
        t2 = time.perf_counter()
        if len(lat) < 20000:
            lat.append(round((t2 - t) * 1000, 3))
        t = t2
    print(
        json.dumps(
            {
                "pairs": pairs,
                "errors": errors,
                "elapsedMs": (time.perf_counter() - start) * 1000,
                "writtenBytes": io_counters()[0] - wchar0,
                "writeCalls": io_counters()[1] - syscw0,
                "lat": lat,
            }
        ),
        flush=True,
    )
