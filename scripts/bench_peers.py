#!/usr/bin/env python3
"""chaosgate against its peers, side by side on loopback (not a test; see docs/peers.md).

Run through scripts/bench-peers, which builds chaosgate and installs the peers first:
    bash scripts/bench-peers [SECONDS]        (environment: ROUNDS, WORKERS, WRK_THREADS,
                                               CONNS, LAT_RATE, LAT_SECS, LAT_ROUNDS, WARMUP)

Three tables, every cell measured once per round, rounds alternating (the latency cells in
rounds of their own, more and shorter, each in a rotated order):
  mocks    chaosgate mock, VidaiMock, llmsim, aimock             x {plain, stream}
  proxies  direct, nginx, HAProxy, chaosgate gateway in front of
           the same chaosgate mock                               x {plain, stream}
  client   chaosgate load --users C against wrk -cC, direct mock x {plain, stream}
Python 3 standard library only.
"""

import ctypes
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CACHE = os.path.join(ROOT, ".cache", "peers")
CHAOSGATE = os.path.join(ROOT, "target", "release", "chaosgate")
VIDAIMOCK = os.path.join(CACHE, "bin", "vidaimock")
LLMSIM = os.path.join(CACHE, "bin", "llmsim")
LLMOCK = os.path.join(CACHE, "aimock", "node_modules", ".bin", "llmock")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
WRK = shutil.which("wrk") or "/usr/bin/wrk"



def whole(name, text, lo, hi):
    try:
        v = int(text)
    except ValueError:
        v = None
    if v is None or not lo <= v <= hi:
        print(f"bench-peers: {name} must be a whole number from {lo} to {hi}, not {text!r}", file=sys.stderr)
        sys.exit(2)
    return v


SECS = whole("SECONDS", sys.argv[1], 1, 600) if len(sys.argv) > 1 else 4  # wrk takes whole seconds
ROUNDS = whole("ROUNDS", os.environ.get("ROUNDS", "5"), 1, 50)
WORKERS = whole("WORKERS", os.environ.get("WORKERS", "2"), 1, 64)
WRK_THREADS = whole("WRK_THREADS", os.environ.get("WRK_THREADS", "2"), 1, 64)
CONNS = whole("CONNS", os.environ.get("CONNS", "32"), 1, 1000)
# 1,000 req/s is light load here (under a tenth of any proxy's capacity) and gives every
# latency cell ≥ 7,000 samples: at 200 req/s (1,400) a proxy's own added p99 moved by
# 43–407 µs between rounds, more than any difference between the proxies (docs/peers.md)
LAT_RATE = whole("LAT_RATE", os.environ.get("LAT_RATE", "1000"), 1, 100000)
WARMUP = whole("WARMUP", os.environ.get("WARMUP", "1"), 0, 60)
# latency cells: 4 s (3 s measured, ≈ 3,000 samples), in 9 rounds of their own. A p99
# difference between two proxies is a difference of two tails; the median of many short
# paired rounds is far less moved by one burst on the machine than the median of three
# long ones (docs/peers.md)
LAT_SECS = whole("LAT_SECS", os.environ.get("LAT_SECS", "4"), 1, 1200)
LAT_ROUNDS = whole("LAT_ROUNDS", os.environ.get("LAT_ROUNDS", "9"), 1, 100)
OUT_JSON = os.path.join(ROOT, "chaosgate-out", "bench-peers.json")
TWIN = "nginx (again)"  # the A/A pair's second nginx
UP_TIMEOUT = 10.0  # seconds a server gets to answer its first check
PLAIN_TOKENS, STREAM_TOKENS = 5, 16
MODES = ("plain", "stream")
TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")


def fail(msg):
    print(f"bench-peers: {msg}", file=sys.stderr)
    sys.exit(2)


def request_body(mode, prompt="bench"):
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}]}
    if mode == "plain":
        body.update(max_tokens=PLAIN_TOKENS, stream=False)
    else:
        body.update(max_tokens=STREAM_TOKENS, stream=True, stream_options={"include_usage": True})
    return json.dumps(body, separators=(",", ":"))


# ---------------------------------------------------------------- processes


def die_with_parent():
    """In the child before exec: SIGTERM when this script dies, even by SIGKILL (Linux prctl)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Procs:
    """Every process started here, each in its own session (so nginx's workers go too)."""

    def __init__(self):
        self.procs = []

    def start(self, argv, cwd=None, env=None, log=None):
        out = open(log, "wb") if log else subprocess.DEVNULL
        full_env = dict(os.environ, **(env or {}))
        p = subprocess.Popen(argv, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent)
        self.procs.append(p)
        return p

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 3
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=2)
        self.procs = []


PROCS = Procs()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_us(pid):
    """utime + stime of pid and every descendant (all threads), in µs."""
    children, ticks = {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(d))
        ticks[int(d)] = int(fields[11]) + int(fields[12])
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += ticks.get(p, 0)
        todo.extend(children.get(p, []))
    return total * TICK_US


# ---------------------------------------------------------------- HTTP checks


def post(port, path, body, timeout=5.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json",
                                                        "Authorization": "Bearer sk-bench"})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def describe(raw, mode):
    """What a reader checks: body bytes, SSE events, content events, the content text."""
    if mode == "plain":
        j = json.loads(raw)
        return {"body_bytes": len(raw), "content": j["choices"][0]["message"]["content"]}
    events = [e for e in raw.decode().split("\n\n") if e.strip()]
    content = []
    for e in events:
        data = "".join(line[5:].lstrip() for line in e.split("\n") if line.startswith("data:"))
        if not data or data == "[DONE]":
            continue
        for c in json.loads(data).get("choices") or []:
            piece = (c.get("delta") or {}).get("content")
            if piece:
                content.append(piece)
    return {"body_bytes": len(raw), "events": len(events), "content_events": len(content),
            "content": "".join(content), "done": events[-1].strip() == "data: [DONE]"}


def wait_up(name, port, path, mode, proc):
    """Posts the benchmark request until it gets a 200 (≤ UP_TIMEOUT s); returns describe()."""
    deadline, last = time.monotonic() + UP_TIMEOUT, "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            fail(f"{name} exited with status {proc.returncode} before answering (see its log)")
        try:
            status, raw = post(port, path, request_body(mode), timeout=2)
            if status == 200:
                return describe(raw, mode)
            last = f"HTTP {status}: {raw[:200]!r}"
        except (OSError, http.client.HTTPException) as e:
            last = str(e)
        time.sleep(0.1)
    fail(f"{name} ({mode}) did not answer 200 on 127.0.0.1:{port}{path} within {UP_TIMEOUT:.0f} s: {last}")


class Server:
    def __init__(self, name, proc, port, path="/v1/chat/completions"):
        self.name, self.proc, self.port, self.path = name, proc, port, path

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}{self.path}"


# ---------------------------------------------------------------- the servers


def start_chaosgate_mock(tmp):
    port = free_port()
    p = PROCS.start([CHAOSGATE, "mock", "--api", "openai", "--listen", f"127.0.0.1:{port}"],
                    env={"TOKIO_WORKER_THREADS": str(WORKERS)}, log=os.path.join(tmp, "chaosgate-mock.log"))
    return Server("chaosgate mock", p, port)


def raw_tera(text):
    return "{% raw %}" + text + "{% endraw %}"


def start_vidaimock(tmp, mode, ref):
    """VidaiMock answering chaosgate's bytes: the plain body verbatim; the stream as chaosgate's
    role event, one event per word (its `{{ chunk }}` is the word plus a space), finish + usage +
    [DONE]. Answers are template files, which it compiles once (an inline `response_body` is
    parsed again on every request). Its pacing cannot be turned off: 1 ms (the least) before
    each frame."""
    d = os.path.join(tmp, f"vidaimock-{mode}")
    os.makedirs(os.path.join(d, "config", "providers"))
    os.makedirs(os.path.join(d, "config", "templates", "bench"))
    with open(os.path.join(d, "mock-server.toml"), "w") as f:
        f.write("[chaos]\ntrickle_ms = 1\n")

    def template(name, text):
        with open(os.path.join(d, "config", "templates", "bench", name), "w") as f:
            f.write(text)
        return f"bench/{name}"

    provider = {"name": "openai", "matcher": "^/v1/chat/completions$", "priority": 10}
    if mode == "plain":
        provider["response_template"] = template("plain.json.j2", raw_tera(ref["raw"].decode()))
    else:
        body = json.loads(ref["plain_raw"])
        body["choices"][0]["message"]["content"] = ref["content"].strip()
        events = ref["events_text"]
        chunk = events[1]  # the first content event: its content replaced by the template's
        first = json.dumps(ref["content_pieces"][0])
        head, tail = chunk.split(first, 1)
        provider["response_template"] = template("stream.json.j2", raw_tera(json.dumps(body, separators=(",", ":"))))
        provider["stream"] = {
            "enabled": True,
            "frame_format": "raw",
            "lifecycle": {
                "on_start": {"template_path": template("start.sse.j2", raw_tera(events[0] + "\n\n"))},
                "on_chunk": {"template_path": template(
                    "chunk.sse.j2", raw_tera(head + '"') + "{{ chunk }}" + raw_tera('"' + tail))},
                "on_stop": {"template_path": template("stop.sse.j2", raw_tera("\n\n".join(events[-3:]) + "\n\n"))},
            },
        }
    # YAML is a superset of JSON: write the provider as JSON
    with open(os.path.join(d, "config", "providers", "openai.yaml"), "w") as f:
        json.dump(provider, f)
    port = free_port()
    p = PROCS.start([VIDAIMOCK, "--host", "127.0.0.1", "--port", str(port), "--workers", str(WORKERS),
                     "--latency", "0", "--config-dir", os.path.join(d, "config")],
                    cwd=d, log=os.path.join(tmp, f"vidaimock-{mode}.log"))
    return Server("VidaiMock", p, port)


def start_llmsim(tmp, mode, ref):
    """llmsim with a fixed answer. It lower-cases the text and streams every word and every
    whitespace character as its own event: a leading space before each of 8 words gives 16."""
    d = os.path.join(tmp, f"llmsim-{mode}")
    os.makedirs(d)
    words = ref["content"].split()
    text = " " + " ".join(words) if mode == "plain" else " " + " ".join(words[: STREAM_TOKENS // 2])
    port = free_port()
    with open(os.path.join(d, "llmsim.toml"), "w") as f:
        f.write(f'[server]\nhost = "127.0.0.1"\nport = {port}\n\n[latency]\nprofile = "instant"\n\n'
                f'[response]\ngenerator = {json.dumps("fixed:" + text)}\n')
    p = PROCS.start([LLMSIM, "serve", "--host", "127.0.0.1", "--port", str(port), "--config", "llmsim.toml"],
                    cwd=d, env={"TOKIO_WORKER_THREADS": str(WORKERS), "RUST_LOG": "error"},
                    log=os.path.join(tmp, f"llmsim-{mode}.log"))
    return Server("llmsim", p, port, "/openai/v1/chat/completions")


def start_aimock(tmp, mode, ref):
    """aimock (one Node thread) with a fixture of chaosgate's text; chunkSize (characters) is
    chosen so the stream has chaosgate's number of content events."""
    d = os.path.join(tmp, f"aimock-{mode}")
    os.makedirs(d)
    content = ref["content"]
    chunk = 4
    if mode == "stream":
        chunk = -(-len(content) // STREAM_TOKENS)  # ceil
        content = content.ljust(chunk * (STREAM_TOKENS - 1) + 1)[: chunk * STREAM_TOKENS]
    fixtures = {"fixtures": [{"match": {"userMessage": "bench"}, "response": {"content": content},
                              "chunkSize": chunk, "latency": 0}]}
    with open(os.path.join(d, "fixtures.json"), "w") as f:
        json.dump(fixtures, f)
    port = free_port()
    p = PROCS.start([LLMOCK, "-h", "127.0.0.1", "-p", str(port), "-f", "fixtures.json", "--log-level", "silent"],
                    cwd=d, log=os.path.join(tmp, f"aimock-{mode}.log"))
    return Server("aimock", p, port)


def start_nginx(tmp, upstream, name="nginx"):
    d = os.path.join(tmp, name.replace(" ", "-").replace("(", "").replace(")", ""))
    os.makedirs(d)
    port = free_port()
    conf = f"""daemon off;
worker_processes {WORKERS};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  keepalive_requests 1000000;
  upstream mock {{ server 127.0.0.1:{upstream.port}; keepalive 32; keepalive_requests 1000000; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
}}
"""
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(conf)
    p = PROCS.start([NGINX, "-p", d, "-c", os.path.join(d, "nginx.conf"), "-e", os.path.join(d, "error.log")],
                    log=os.path.join(d, "nginx.log"))
    return Server(name, p, port)


def start_haproxy(tmp, upstream):
    port = free_port()
    cfg = os.path.join(tmp, "haproxy.cfg")
    with open(cfg, "w") as f:
        f.write(f"""global
  nbthread {WORKERS}
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend fe
  bind 127.0.0.1:{port}
  default_backend be
backend be
  server mock 127.0.0.1:{upstream.port}
""")
    p = PROCS.start([HAPROXY, "-db", "-f", cfg], log=os.path.join(tmp, "haproxy.log"))
    return Server("HAProxy", p, port)


def start_gateway(tmp, upstream):
    """The reference gateway with active health checks and a consecutive-failure breaker on."""
    port = free_port()
    p = PROCS.start([CHAOSGATE, "gateway", "--listen", f"127.0.0.1:{port}",
                     "--target", f"mock=http://127.0.0.1:{upstream.port}",
                     "--health-interval", "5s", "--health-timeout", "2s", "--breaker", "consecutive:5,10s",
                     "--workers", str(WORKERS)],
                    env={"TOKIO_WORKER_THREADS": str(WORKERS)}, log=os.path.join(tmp, "gateway.log"))
    return Server("chaosgate gateway", p, port)


# ---------------------------------------------------------------- clients


def wrk_lua(tmp, mode):
    path = os.path.join(tmp, f"{mode}.lua")
    with open(path, "w") as f:
        f.write(f'wrk.method = "POST"\nwrk.body = [[{request_body(mode)}]]\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
                'wrk.headers["Authorization"] = "Bearer sk-bench"\n')
    return path


def run_wrk(server, lua, secs, cpu_pid):
    """Closed loop with wrk; returns rate, requests, errors and the server's CPU per request."""
    c0 = cpu_us(cpu_pid) if cpu_pid else 0
    try:
        out = subprocess.run([WRK, f"-t{WRK_THREADS}", f"-c{CONNS}", f"-d{secs}s", "-s", lua, server.url],
                             capture_output=True, text=True, timeout=secs + 30).stdout
    except subprocess.TimeoutExpired:
        fail(f"wrk against {server.name} did not end within {secs + 30:.0f} s")
    c1 = cpu_us(cpu_pid) if cpu_pid else 0
    r = {"rate": 0.0, "requests": 0, "non_2xx": 0, "socket_errors": 0}
    for line in out.splitlines():
        w = line.split()
        if line.startswith("Requests/sec:"):
            r["rate"] = float(w[1])
        elif "requests in" in line:
            r["requests"] = int(w[0])
        elif line.strip().startswith("Non-2xx"):
            r["non_2xx"] = int(w[-1])
        elif line.strip().startswith("Socket errors"):
            r["socket_errors"] = sum(int(x.strip(",")) for x in w[3::2])
    if r["requests"] == 0:
        fail(f"wrk got no answer from {server.name} at {server.url}:\n{out}")
    if cpu_pid:
        r["cpu_us_per_req"] = (c1 - c0) / r["requests"]
    return r


def mix_file(tmp, mode):
    path = os.path.join(tmp, f"mix-{mode}.toml")
    with open(path, "w") as f:
        tokens = PLAIN_TOKENS if mode == "plain" else STREAM_TOKENS
        f.write(f'[[kind]]\nname = "{mode}"\nstream = {"true" if mode == "stream" else "false"}\n'
                f'model = "gpt-4o"\nprompt_tokens = 2\nmax_tokens = {tokens}\n')
    return path


def run_load(tmp, server, mode, secs, users=None, rate=None):
    """chaosgate load, closed loop (--users) or open loop at a constant --rate."""
    base = f"http://127.0.0.1:{server.port}"
    rep = os.path.join(tmp, "load.json")
    argv = [CHAOSGATE, "load", "--target", base, "--mix", mix_file(tmp, mode), "--duration", f"{secs}s",
            "--quiet", "--seed", "1", "--json", rep]
    argv += ["--users", str(users)] if users else ["--rate", str(rate), "--arrival", "constant"]
    if secs >= 2:  # latency from the second second on: connection set-up is not what is compared
        argv += ["--phase", f"steady=1s..{secs}s"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=secs + 60)
    except subprocess.TimeoutExpired:
        fail(f"chaosgate load against {server.name} did not end within {secs + 60:.0f} s")
    if not os.path.exists(rep):
        fail(f"chaosgate load against {server.name} wrote no report (exit {done.returncode}):\n{done.stderr}")
    with open(rep) as f:
        j = json.load(f)
    os.remove(rep)
    req = j["requests"]
    lat = j["phases"]["steady"]["latency_ms"] if secs >= 2 else j["latency_ms"]
    return {"rate": j["throughput"]["requests_per_s"], "sent": req["sent"], "ok": req["ok"],
            "failed": req["failed"], "p50_ms": lat["p50"], "p99_ms": lat["p99"], "latency_samples": lat["count"]}


# ---------------------------------------------------------------- statistics and printing


def med(v):
    return statistics.median(v) if v else float("nan")


def spread(v, fmt):
    if not v:
        return "n/a"
    if len(v) == 1:
        return fmt(v[0])
    return f"{fmt(med(v))} ({fmt(min(v))}–{fmt(max(v))})"


def f_rate(x):
    return f"{x:,.0f}"


def f_ratio(x):
    return f"{x:.2f}"


def f_us(x):
    return f"{x:,.0f}"


def f_ms_signed(x):
    return f"{x * 1000:+,.0f}"


def table(title, header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    print(f"\n{title}")
    for r in [header] + rows:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


# ---------------------------------------------------------------- main


def reference_answers(mock):
    """What chaosgate's mock answers the benchmark request: the peers are set up to match."""
    ref = {}
    for mode in MODES:
        status, raw = post(mock.port, mock.path, request_body(mode))
        if status != 200:
            fail(f"chaosgate mock answered {status} to the {mode} benchmark request: {raw[:200]!r}")
        d = describe(raw, mode)
        d["raw"] = raw
        if mode == "stream":
            d["events_text"] = [e for e in raw.decode().split("\n\n") if e.strip()]
            d["content_pieces"] = [json.loads(e[5:].strip())["choices"][0]["delta"]["content"]
                                   for e in d["events_text"][1:1 + d["content_events"]]]
            if d["content_events"] != STREAM_TOKENS or len(d["events_text"]) != STREAM_TOKENS + 4:
                fail(f"chaosgate mock's stream has {d['content_events']} content events in "
                     f"{len(d['events_text'])} (expected {STREAM_TOKENS} in {STREAM_TOKENS + 4}): "
                     "its answer format changed; update bench_peers.py")
        ref[mode] = d
    ref["stream"]["plain_raw"] = ref["plain"]["raw"]
    return ref


def check_answer(name, mode, got, ref, notes):
    """Compares a server's answer with chaosgate's: same content for plain, same number of
    content events for streams (content may differ in case and spacing); a note otherwise."""
    if mode == "plain":
        if got["content"].strip().lower() != ref["content"].strip().lower():
            fail(f"{name} (plain) answers {got['content']!r}, expected {ref['content']!r}")
    else:
        if not got.get("done"):
            fail(f"{name} (stream) does not end with data: [DONE]")
        if got["content_events"] != ref["content_events"]:
            notes.append(f"{name}: {got['content_events']} content events per stream "
                         f"(chaosgate: {ref['content_events']})")
        if len(got["content"].split()) == 0:
            fail(f"{name} (stream) streams no content")


def main():
    for path, what in [(CHAOSGATE, "cargo build --release --bin chaosgate"), (VIDAIMOCK, "scripts/peers-setup"),
                       (LLMSIM, "scripts/peers-setup"), (LLMOCK, "scripts/peers-setup"), (WRK, "scripts/peers-setup"),
                       (NGINX, "scripts/peers-setup"), (HAPROXY, "scripts/peers-setup")]:
        if not os.path.exists(path):
            fail(f"{path} is missing: run {what}")
    tmp = tempfile.mkdtemp(prefix="bench-peers-")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        run(tmp)
    except KeyboardInterrupt:
        print("\nbench-peers: interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        PROCS.kill_all()
        shutil.rmtree(tmp, ignore_errors=True)


def run(tmp):
    notes = []
    started = datetime.now(timezone.utc)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                capture_output=True, text=True).stdout.strip())
    print(f"bench-peers: {started:%Y-%m-%d %H:%M} UTC, commit {commit}{' (dirty)' if dirty else ''}; "
          f"{ROUNDS} rounds of {SECS:g} s per cell, {WORKERS} worker threads/processes per server, "
          f"wrk -t{WRK_THREADS} -c{CONNS}; latency: {LAT_ROUNDS} rounds of {LAT_SECS} s cells, open loop at "
          f"{LAT_RATE} req/s; {os.cpu_count()} cores")

    mock = start_chaosgate_mock(tmp)
    wait_up(mock.name, mock.port, mock.path, "plain", mock.proc)
    ref = reference_answers(mock)

    # -- every server, checked against chaosgate's answer
    mocks = {("chaosgate mock", m): mock for m in MODES}
    starters = [("VidaiMock", start_vidaimock), ("llmsim", start_llmsim), ("aimock", start_aimock)]
    for name, start in starters:
        for mode in MODES:
            mocks[(name, mode)] = start(tmp, mode, ref[mode])
    proxies = {"direct": mock}
    for start in (start_nginx, start_haproxy, start_gateway):
        s = start(tmp, mock)
        proxies[s.name] = s
    # an A/A pair for the latency cells: the same nginx a second time. How far apart two
    # identical proxies measure in this run is the run's resolution: the yardstick of "no
    # worse" at p99 (docs/peers.md, "Verdicts")
    twin = start_nginx(tmp, mock, name=TWIN)
    wait_up(TWIN, twin.port, twin.path, "plain", twin.proc)
    lat_servers = {**proxies, TWIN: twin}
    answers = []
    for (name, mode), s in list(mocks.items()) + [((n, m), s) for n, s in proxies.items() if n != "direct"
                                                    for m in MODES]:
        got = wait_up(name, s.port, s.path, mode, s.proc)
        if name != "chaosgate mock":
            check_answer(name, mode, got, ref[mode], notes)
        answers.append({"server": name, "mode": mode, "port": s.port, "path": s.path,
                        **{k: v for k, v in got.items() if k != "done"}})
        if got["body_bytes"] < 0.9 * ref[mode]["body_bytes"]:
            notes.append(f"{name} ({mode}): its JSON carries fewer fields than chaosgate's: "
                         f"{got['body_bytes']:,} bytes against {ref[mode]['body_bytes']:,} (in its favour)")
    notes.append("VidaiMock: its stream pacing cannot be turned off (trickle 0 means 20 ms); the least, "
                 f"1 ms, sleeps before each of its {STREAM_TOKENS + 2} frames: at least "
                 f"{STREAM_TOKENS + 2} ms per stream, so at most {CONNS * 1000 // (STREAM_TOKENS + 2):,} "
                 f"streams/s over {CONNS} connections")
    notes.append("llmsim and VidaiMock leave Nagle on (no TCP_NODELAY): with delayed ACKs a small write "
                 "can wait ≈40 ms for the previous one's ACK, which shows in their stream rates")
    notes.append("aimock is one Node.js thread (WORKERS does not apply)")
    notes.append("nginx and HAProxy run without health checks; the chaosgate gateway with active "
                 "health checks (5 s) and a consecutive-failure breaker")
    table("answers to the benchmark request (plain: ~5 tokens; stream: 16 tokens asked for)",
          ["server", "mode", "bytes", "events", "content events", "content"],
          [[a["server"], a["mode"], a["body_bytes"], a.get("events", "-"), a.get("content_events", "-"),
            repr(a["content"][:40] + ("…" if len(a["content"]) > 40 else ""))] for a in answers])

    lua = {m: wrk_lua(tmp, m) for m in MODES}
    if WARMUP > 0:
        for (name, mode), s in mocks.items():
            run_wrk(s, lua[mode], WARMUP, None)
        for name, s in lat_servers.items():
            if name != "direct":
                for mode in MODES:
                    run_wrk(s, lua[mode], WARMUP, None)

    # -- rounds: every cell once per round
    cells = {}  # (table, server, mode, measure) -> list of per-round dicts

    def add(key, r):
        cells.setdefault(key, []).append(r)

    for rnd in range(1, ROUNDS + 1):
        t0 = time.monotonic()
        for mode in MODES:
            for name in ("chaosgate mock", "VidaiMock", "llmsim", "aimock"):
                s = mocks[(name, mode)]
                add(("mocks", name, mode, "wrk"), run_wrk(s, lua[mode], SECS, s.proc.pid))
            for name, s in proxies.items():
                add(("proxies", name, mode, "wrk"), run_wrk(s, lua[mode], SECS, s.proc.pid))
            add(("client", "wrk", mode, "rate"), run_wrk(mock, lua[mode], SECS, None))
            add(("client", "chaosgate load", mode, "rate"), run_load(tmp, mock, mode, SECS, users=CONNS))
        print(f"  round {rnd}/{ROUNDS} done in {time.monotonic() - t0:.0f} s", flush=True)
    names = list(lat_servers)
    for rnd in range(1, LAT_ROUNDS + 1):
        t0 = time.monotonic()
        order = names[(rnd - 1) % len(names):] + names[:(rnd - 1) % len(names)]  # no proxy always first
        for mode in MODES:
            for name in order:
                add(("proxies", name, mode, "latency"), run_load(tmp, lat_servers[name], mode, LAT_SECS,
                                                                 rate=LAT_RATE))
        print(f"  latency round {rnd}/{LAT_ROUNDS} done in {time.monotonic() - t0:.0f} s", flush=True)

    for key, rs in cells.items():
        bad = [r for r in rs if r.get("non_2xx") or r.get("socket_errors") or r.get("failed")]
        if bad:
            notes.append(f"{key[1]} ({key[2]}, {key[0]}): errors in {len(bad)} round(s): "
                         + "; ".join(f"non-2xx {r.get('non_2xx', 0)}, socket {r.get('socket_errors', 0)}, "
                                     f"failed {r.get('failed', 0)}" for r in bad))

    def vals(key, field):
        return [r[field] for r in cells.get(key, []) if field in r]

    def ratios(a, b):
        return [x / y for x, y in zip(a, b) if y > 0]

    rows, summary = [], []

    def verdict_throughput(rs, tie):
        m = med(rs)
        return "first" if m >= 1.0 else "tied" if m >= tie else "behind"

    # -- mocks
    trows = []
    for name in ("chaosgate mock", "VidaiMock", "llmsim", "aimock"):
        row = [name]
        for mode in MODES:
            row += [spread(vals(("mocks", name, mode, "wrk"), "rate"), f_rate)]
        for mode in MODES:
            row += [f_us(med(vals(("mocks", name, mode, "wrk"), "cpu_us_per_req")))]
        for mode in MODES:
            if name == "chaosgate mock":
                row += ["—"]
                continue
            rs = ratios(vals(("mocks", "chaosgate mock", mode, "wrk"), "rate"), vals(("mocks", name, mode, "wrk"), "rate"))
            row += [spread(rs, f_ratio)]
            v = verdict_throughput(rs, 0.95)
            rows.append({"table": "mocks", "row": f"chaosgate mock vs {name}", "mode": mode, "measure": "rate ratio",
                         "values": rs, "median": med(rs), "min": min(rs), "max": max(rs), "verdict": v})
        trows.append(row)
    table("mocks: closed loop, wrk (req/s or streams/s: median (min–max)); server CPU per request (µs, median); "
          "ratio = chaosgate mock / peer, paired by round",
          ["server", "plain rate", "stream rate", "CPU plain", "CPU stream", "ratio plain", "ratio stream"], trows)
    for mode in MODES:
        peers = [r for r in rows if r["table"] == "mocks" and r["mode"] == mode]
        fastest = min(peers, key=lambda r: r["median"])  # the smallest ratio: the fastest peer
        summary.append((f"mock vs fastest peer ({fastest['row'].split(' vs ')[1]}), {mode}",
                        f_ratio(fastest["median"]), fastest["verdict"],
                        "≥ 1.0" if mode == "plain" else "≥ 2.0",
                        fastest["median"] >= (1.0 if mode == "plain" else 2.0)))

    # -- proxies
    direct_lat = {m: cells[("proxies", "direct", m, "latency")] for m in MODES}
    trows = []
    for name in lat_servers:
        row = [name]
        for mode in MODES:
            row += [spread(vals(("proxies", name, mode, "wrk"), "rate"), f_rate) if name in proxies else "—"]
        for mode in MODES:
            row += ["—" if name in ("direct", TWIN)
                    else f_us(med(vals(("proxies", name, mode, "wrk"), "cpu_us_per_req")))]
        for mode in MODES:
            lat = cells[("proxies", name, mode, "latency")]
            add50 = [r["p50_ms"] - d["p50_ms"] for r, d in zip(lat, direct_lat[mode])]
            add99 = [r["p99_ms"] - d["p99_ms"] for r, d in zip(lat, direct_lat[mode])]
            for r, a50, a99 in zip(lat, add50, add99):
                r["added_p50_ms"], r["added_p99_ms"] = a50, a99
            if name == "direct":
                row += [f"{med([r['p50_ms'] for r in lat]) * 1000:,.0f} / {med([r['p99_ms'] for r in lat]) * 1000:,.0f}"]
            else:
                row += [f"{spread(add50, f_ms_signed)} / {spread(add99, f_ms_signed)}"]
        trows.append(row)
    table(f"proxies in front of the same chaosgate mock: wrk rate; proxy CPU per request (µs); latency at "
          f"{LAT_RATE} req/s open loop: direct p50 / p99 (µs), the others added p50 / p99 (µs) over direct",
          ["proxy", "plain rate", "stream rate", "CPU plain", "CPU stream", "latency plain", "latency stream"], trows)
    # the A/A pair: nginx against itself, per round; the median distance between the two is
    # what this run cannot tell apart
    resolution, trows = {}, []
    for mode in MODES:
        a = cells[("proxies", "nginx", mode, "latency")]
        b = cells[("proxies", TWIN, mode, "latency")]
        a50 = [x["p50_ms"] - y["p50_ms"] for x, y in zip(a, b)]
        a99 = [x["p99_ms"] - y["p99_ms"] for x, y in zip(a, b)]
        resolution[mode] = (med([abs(v) for v in a50]), med([abs(v) for v in a99]))
        strict = "first" if med(a50) <= 0 and med(a99) <= 0 else "tied" if med(a50) <= 0.1 and med(a99) <= 0 \
            else "behind"
        rows.append({"table": "proxies", "row": "nginx vs nginx (again): A/A", "mode": mode,
                     "measure": "p50 / p99 difference (ms)", "p50_values": a50, "p99_values": a99,
                     "p50_resolution": resolution[mode][0], "p99_resolution": resolution[mode][1],
                     "verdict_with_p99_at_most_0": strict})
        trows.append([mode, f"{spread(a50, f_ms_signed)} / {spread(a99, f_ms_signed)}",
                      f"{f_us(resolution[mode][0] * 1000)} / {f_us(resolution[mode][1] * 1000)}", strict])
    table(f"A/A: nginx against a second, identical nginx, same {LAT_ROUNDS} latency rounds: the p50 / p99 "
          "difference (µs); the median distance between the two is the run's resolution, which a p99 "
          "difference must exceed to count as worse; last column: the verdict \"p99 no worse\" read as "
          "\"p99 difference ≤ 0\" would give nginx against itself",
          ["mode", "difference p50 / p99", "resolution p50 / p99", "nginx vs itself, p99 ≤ 0"], trows)

    trows = []
    for peer in ("nginx", "HAProxy"):
        for mode in MODES:
            rs = ratios(vals(("proxies", "chaosgate gateway", mode, "wrk"), "rate"), vals(("proxies", peer, mode, "wrk"), "rate"))
            tie = 0.95 if mode == "plain" or peer != "nginx" else 0.9
            v = verdict_throughput(rs, tie)
            rows.append({"table": "proxies", "row": f"chaosgate gateway vs {peer}", "mode": mode,
                         "measure": "rate ratio", "values": rs, "median": med(rs), "min": min(rs), "max": max(rs),
                         "tie_at": tie, "verdict": v})
            g = cells[("proxies", "chaosgate gateway", mode, "latency")]
            p = cells[("proxies", peer, mode, "latency")]
            d50 = [a["added_p50_ms"] - b["added_p50_ms"] for a, b in zip(g, p)]
            d99 = [a["added_p99_ms"] - b["added_p99_ms"] for a, b in zip(g, p)]
            tie99 = resolution[mode][1]
            lv = ("first" if med(d50) <= 0 and med(d99) <= 0 else
                  "tied" if med(d50) <= 0.1 and med(d99) <= tie99 else "behind")
            rows.append({"table": "proxies", "row": f"chaosgate gateway vs {peer}", "mode": mode,
                         "measure": "added latency difference (ms)", "p50_values": d50, "p99_values": d99,
                         "p50_median": med(d50), "p99_median": med(d99), "p99_tie_at": tie99, "verdict": lv})
            trows.append([f"gateway vs {peer}", mode, spread(rs, f_ratio), v,
                          f"{spread(d50, f_ms_signed)} / {spread(d99, f_ms_signed)}", lv])
            summary.append((f"gateway vs {peer}, {mode}: throughput", f_ratio(med(rs)), v, f"≥ {tie}", v != "behind"))
            summary.append((f"gateway vs {peer}, {mode}: added latency p50 / p99 (µs)",
                            f"{f_ms_signed(med(d50))} / {f_ms_signed(med(d99))}", lv,
                            f"p50 ≤ +100, p99 ≤ {f_ms_signed(tie99)} (A/A)",
                            lv != "behind"))
    table("gateway against each proxy: rate ratio gateway / proxy; gateway's added latency minus the proxy's "
          "(µs, p50 / p99; negative = the gateway adds less)",
          ["row", "mode", "rate ratio", "verdict", "added latency difference", "verdict"], trows)

    # -- load client
    trows = []
    for mode in MODES:
        w = vals(("client", "wrk", mode, "rate"), "rate")
        c = vals(("client", "chaosgate load", mode, "rate"), "rate")
        rs = ratios(c, w)
        v = verdict_throughput(rs, 0.95)
        rows.append({"table": "client", "row": "chaosgate load vs wrk", "mode": mode, "measure": "rate ratio",
                     "values": rs, "median": med(rs), "min": min(rs), "max": max(rs), "verdict": v})
        trows.append([mode, spread(w, f_rate), spread(c, f_rate), spread(rs, f_ratio), v])
        summary.append((f"chaosgate load vs wrk, {mode}", f_ratio(med(rs)), v, "≥ 0.95", med(rs) >= 0.95))
    table(f"load client against the direct chaosgate mock, closed loop, {CONNS} connections: "
          f"chaosgate load --users {CONNS} vs wrk -t{WRK_THREADS} -c{CONNS}",
          ["mode", "wrk", "chaosgate load", "ratio", "verdict"], trows)

    table("summary (medians over rounds. first: ratio ≥ 1 / adds no more latency at p50 and p99; tied: ratio "
          "≥ 0.95 (gateway vs nginx streamed: 0.9), added p50 within 100 µs and p99 no worse than the run's A/A "
          "resolution; behind: otherwise. "
          "Issue 21 is done when every row is first or tied and every target is met, in one run)",
          ["row", "median", "verdict", "issue 21 target", "met"],
          [list(s[:4]) + ["yes" if s[4] else "NO"] for s in summary])
    met = sum(1 for s in summary if s[4])
    print(f"  issue 21 targets met: {met} of {len(summary)}")
    if notes:
        print("\nnotes:")
        for n in notes:
            print(f"  - {n}")

    os.makedirs(os.path.dirname(OUT_JSON), exist_ok=True)
    result = {
        "started": started.isoformat(timespec="seconds"), "commit": commit, "dirty": dirty,
        "settings": {"seconds": SECS, "rounds": ROUNDS, "workers": WORKERS, "wrk_threads": WRK_THREADS,
                     "connections": CONNS, "latency_rate": LAT_RATE, "latency_secs": LAT_SECS,
                     "latency_rounds": LAT_ROUNDS, "warmup_s": WARMUP,
                     "cores": os.cpu_count()},
        "answers": answers,
        "cells": [{"table": k[0], "server": k[1], "mode": k[2], "measure": k[3], "rounds": v}
                  for k, v in cells.items()],
        "rows": rows,
        "summary": [{"row": s[0], "median": s[1], "verdict": s[2], "target": s[3], "met": s[4]}
                    for s in summary],
        "notes": notes,
    }
    with open(OUT_JSON, "w") as f:
        json.dump(result, f, indent=1)
    print(f"\nwrote {os.path.relpath(OUT_JSON, ROOT)}")


if __name__ == "__main__":
    main()
