#!/usr/bin/env python3
"""Helpers for bench/smpp/run.sh: talk to a running Rampart (connectors, metrics, a fixed-size
backlog of sends), sample a process's memory and per-thread CPU, and summarise a run.

Standard library only. The API key comes from BENCH_API_KEY (never from the command line, so it
stays out of `ps`); the server's self-signed certificate is trusted via --cacert.

Subcommands:
  wait-bound  --url U --cacert C --connector NAME [--timeout S]
  backlog     --url U --cacert C --messages N [--per-request R] [--connections K]
  sample      --url U --cacert C --pid PID [--interval S]      (TSV lines until SIGTERM)
  threads     PID...                                           (JSON snapshot of thread CPU)
  cpu         BEFORE.json AFTER.json                           (CPU % per process and thread)
  summarize   --sink-log F --samples F --from MS --to MS [--label L]
  drain       --sink-log F --samples F --smsc-start MS --drained MS --messages N
"""

import argparse
import http.client
import json
import os
import signal
import ssl
import sys
import threading
import time
import urllib.parse


def api_key():
    key = os.environ.get("BENCH_API_KEY", "")
    if not key.startswith("rk_"):
        sys.exit("probe.py: set BENCH_API_KEY to the server's rk_ key")
    return key


class Api:
    """One keep-alive HTTPS connection to Rampart."""

    def __init__(self, url, cacert):
        parsed = urllib.parse.urlsplit(url)
        self.host = parsed.hostname or "localhost"
        self.port = parsed.port or 443
        self.context = ssl.create_default_context(cafile=cacert)
        self.headers = {"Authorization": "Bearer " + api_key()}
        self.conn = None

    def request(self, method, path, body=None):
        headers = dict(self.headers)
        if body is not None:
            body = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection(
                    self.host, self.port, context=self.context, timeout=30
                )
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt == 1:
                    raise
        raise RuntimeError("unreachable")


def metric_sums(text):
    """Sums of the counters we follow, over all their label sets."""
    wanted = {
        "rampart_messages_accepted_total": "accepted",
        "rampart_messages_claimed_total": "claimed",
        "rampart_messages_sent_total": "sent",
        "rampart_messages_failed_total": "failed",
    }
    sums = dict.fromkeys(wanted.values(), 0)
    sums["in_flight"] = 0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name == "rampart_connector_in_flight" and 'connector="smsc"' in line:
            sums["in_flight"] = int(float(line.rsplit(" ", 1)[1]))
        elif name in wanted:
            try:
                sums[wanted[name]] += int(float(line.rsplit(" ", 1)[1]))
            except (IndexError, ValueError):
                pass
    return sums


def proc_memory_kb(pid):
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


def now_ms():
    return int(time.time() * 1000)


def cmd_wait_bound(args):
    api = Api(args.url, args.cacert)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        try:
            status, body = api.request("GET", "/v1/connectors")
            if status == 200:
                for connector in json.loads(body)["data"]:
                    if connector["name"] == args.connector and connector["up"]:
                        print(f"connector {args.connector} is bound (window {connector.get('window')})")
                        return
            elif status in (401, 403):
                sys.exit(f"probe.py: GET /v1/connectors answered {status}: {body[:200]!r}")
        except (OSError, http.client.HTTPException, ValueError, KeyError):
            pass
        time.sleep(0.2)
    sys.exit(f"probe.py: connector {args.connector} not bound within {args.timeout} s")


def cmd_backlog(args):
    """Sends exactly --messages messages, --per-request recipients per request (UK mobile
    numbers +447900xxxxxx, the load generator's first block), over --connections connections."""
    if args.messages % args.per_request:
        sys.exit("probe.py: --messages must be a multiple of --per-request")
    requests = args.messages // args.per_request
    lock = threading.Lock()
    state = {"next": 0, "accepted": 0, "errors": []}

    def worker():
        api = Api(args.url, args.cacert)
        while True:
            with lock:
                index = state["next"]
                if index >= requests or state["errors"]:
                    return
                state["next"] += 1
            first = index * args.per_request
            to = [f"+447900{(first + i) % 1_000_000:06d}" for i in range(args.per_request)]
            body = {"from": "Rampart", "to": to, "body": "Rampart benchmark: your code is 123456"}
            status, reply = api.request("POST", "/v1/messages", body)
            with lock:
                if status == 202:
                    state["accepted"] += args.per_request
                else:
                    state["errors"].append(f"{status}: {reply[:300]!r}")

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(args.connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    secs = time.monotonic() - started
    if state["errors"]:
        sys.exit(f"probe.py: a send was refused: {state['errors'][0]}")
    print(
        f"accepted {state['accepted']} messages in {requests} requests in {secs:.1f} s "
        f"({state['accepted'] / secs:.0f} msgs/s)"
    )


def cmd_sample(args):
    """Every --interval: unix_ms, server VmRSS and VmHWM (kB), the message counters, and the
    submissions in flight on the connector `smsc` at that instant."""
    api = Api(args.url, args.cacert)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("unix_ms\trss_kb\thwm_kb\taccepted\tclaimed\tsent\tfailed\tin_flight", flush=True)
    while not stop.is_set():
        started = time.monotonic()
        rss, hwm = proc_memory_kb(args.pid)
        if rss == 0:
            return
        try:
            status, body = api.request("GET", "/metrics")
            sums = metric_sums(body.decode()) if status == 200 else None
        except (OSError, http.client.HTTPException):
            sums = None
        if sums is not None:
            print(
                f"{now_ms()}\t{rss}\t{hwm}\t{sums['accepted']}\t{sums['claimed']}\t"
                f"{sums['sent']}\t{sums['failed']}\t{sums['in_flight']}",
                flush=True,
            )
        stop.wait(max(0.0, args.interval - (time.monotonic() - started)))


def thread_times(pid):
    """(thread name -> [threads, cpu seconds]) of one process."""
    ticks = os.sysconf("SC_CLK_TCK")
    names = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return names
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is field 3 (state): utime and stime are fields 14 and 15.
        cpu = (int(fields[11]) + int(fields[12])) / ticks
        entry = names.setdefault(name, [0, 0.0])
        entry[0] += 1
        entry[1] += cpu
    return names


def process_name(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return str(pid)


def cmd_threads(args):
    snapshot = {"at": time.monotonic(), "processes": {}}
    for pid in args.pids:
        snapshot["processes"][pid] = {"name": process_name(pid), "threads": thread_times(pid)}
    json.dump(snapshot, sys.stdout)


def cmd_cpu(args):
    with open(args.before) as f:
        before = json.load(f)
    with open(args.after) as f:
        after = json.load(f)
    secs = after["at"] - before["at"]
    print(f"CPU over {secs:.1f} s (100% = one core):")
    for pid, proc in after["processes"].items():
        old = before["processes"].get(pid, {"threads": {}})["threads"]
        rows = []
        for name, (count, cpu) in proc["threads"].items():
            used = cpu - old.get(name, [0, 0.0])[1]
            rows.append((used / secs * 100, name, count))
        total = sum(row[0] for row in rows)
        print(f"  {proc['name']} (pid {pid}): {total:.0f}%")
        for share, name, count in sorted(rows, reverse=True):
            if share >= 0.5:
                print(f"    {share:5.0f}%  {name}" + (f" (x{count})" if count > 1 else ""))


def read_sink_log(path):
    """The sink's per-second lines: (unix_ms, submit_sm_total), and its closing summary."""
    lines, summary = [], {}
    with open(path) as f:
        for line in f:
            if line.startswith("# total submit_sm"):
                words = line.replace(",", "").split()
                summary = {
                    "total": int(words[3]),
                    "first_ms": int(words[6]),
                    "last_ms": int(words[9]),
                }
            elif line[:1].isdigit():
                fields = line.split()
                lines.append((int(fields[0]), int(fields[1])))
    return lines, summary


def read_samples(path):
    rows = []
    with open(path) as f:
        for line in f:
            if line[:1].isdigit():
                rows.append([int(x) for x in line.split("\t")])
    return rows


def rate_between(points, start, end):
    """Rate over the points (unix_ms, count) inside [start, end], and per-interval min/max."""
    inside = [p for p in points if start <= p[0] <= end]
    if len(inside) < 2:
        return None
    (t0, n0), (t1, n1) = inside[0], inside[-1]
    steps = [
        (b[1] - a[1]) * 1000 / (b[0] - a[0]) for a, b in zip(inside, inside[1:]) if b[0] > a[0]
    ]
    return {
        "rate": (n1 - n0) * 1000 / (t1 - t0),
        "min": min(steps),
        "max": max(steps),
        "secs": (t1 - t0) / 1000,
    }


def cmd_summarize(args):
    sink, _ = read_sink_log(args.sink_log)
    samples = read_samples(args.samples)
    smsc = rate_between(sink, args.start, args.end)
    sent = rate_between([(s[0], s[5]) for s in samples], args.start, args.end)
    accepted = rate_between([(s[0], s[3]) for s in samples], args.start, args.end)
    inside = [s for s in samples if args.start <= s[0] <= args.end]
    if not (smsc and sent and accepted and inside):
        sys.exit("probe.py: not enough samples in the window")
    queue_start = inside[0][3] - inside[0][5] - inside[0][6]
    queue_end = inside[-1][3] - inside[-1][5] - inside[-1][6]
    hwm = max(s[2] for s in samples)
    in_flight = [s[7] for s in inside]
    result = {
        "label": args.label,
        "window_s": round(smsc["secs"], 1),
        "accepted_per_s": round(accepted["rate"]),
        "smsc_submit_sm_per_s": round(smsc["rate"]),
        "smsc_per_s_min": round(smsc["min"]),
        "smsc_per_s_max": round(smsc["max"]),
        "sent_per_s": round(sent["rate"]),
        "queue_at_start": queue_start,
        "queue_at_end": queue_end,
        "in_flight_mean": round(sum(in_flight) / len(in_flight), 1),
        "server_peak_rss_mb": round(hwm / 1024, 1),
    }
    print(json.dumps(result))


def cmd_drain(args):
    sink, summary = read_sink_log(args.sink_log)
    samples = read_samples(args.samples)
    if not summary:
        sys.exit("probe.py: the sink log has no closing summary (was it stopped with SIGTERM?)")
    during = [s for s in samples if args.smsc_start <= s[0] <= args.drained]
    before = [s for s in samples if s[0] < args.smsc_start]
    if not during or not before:
        sys.exit("probe.py: not enough samples around the drain")
    drain_ms = max(1, summary["last_ms"] - summary["first_ms"])
    result = {
        "messages": args.messages,
        "smsc_submit_sm_total": summary["total"],
        "bind_after_smsc_start_s": round((summary["first_ms"] - args.smsc_start) / 1000, 2),
        "drain_s": round(drain_ms / 1000, 2),
        "drain_per_s": round(summary["total"] * 1000 / drain_ms),
        "rss_mb_before_intake": round(samples[0][1] / 1024, 1),
        "rss_mb_with_backlog_queued": round(before[-1][1] / 1024, 1),
        "rss_mb_min_during_drain": round(min(s[1] for s in during) / 1024, 1),
        "rss_mb_max_during_drain": round(max(s[1] for s in during) / 1024, 1),
        "rss_mb_after_drain": round(samples[-1][1] / 1024, 1),
        "server_peak_rss_mb": round(max(s[2] for s in samples) / 1024, 1),
        "rss_samples_during_drain": len(during),
        "in_flight_mean_during_drain": round(sum(s[7] for s in during) / len(during), 1),
        "sent_total": samples[-1][5],
        "failed_total": samples[-1][6],
    }
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def with_api(p):
        p.add_argument("--url", required=True)
        p.add_argument("--cacert", required=True)

    p = sub.add_parser("wait-bound")
    with_api(p)
    p.add_argument("--connector", required=True)
    p.add_argument("--timeout", type=float, default=60)
    p.set_defaults(func=cmd_wait_bound)

    p = sub.add_parser("backlog")
    with_api(p)
    p.add_argument("--messages", type=int, required=True)
    p.add_argument("--per-request", type=int, default=100)
    p.add_argument("--connections", type=int, default=4)
    p.set_defaults(func=cmd_backlog)

    p = sub.add_parser("sample")
    with_api(p)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--interval", type=float, default=1.0)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("threads")
    p.add_argument("pids", nargs="+")
    p.set_defaults(func=cmd_threads)

    p = sub.add_parser("cpu")
    p.add_argument("before")
    p.add_argument("after")
    p.set_defaults(func=cmd_cpu)

    p = sub.add_parser("summarize")
    p.add_argument("--sink-log", required=True)
    p.add_argument("--samples", required=True)
    p.add_argument("--from", dest="start", type=int, required=True)
    p.add_argument("--to", dest="end", type=int, required=True)
    p.add_argument("--label", default="")
    p.set_defaults(func=cmd_summarize)

    p = sub.add_parser("drain")
    p.add_argument("--sink-log", required=True)
    p.add_argument("--samples", required=True)
    p.add_argument("--smsc-start", type=int, required=True)
    p.add_argument("--drained", type=int, required=True)
    p.add_argument("--messages", type=int, required=True)
    p.set_defaults(func=cmd_drain)

    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
