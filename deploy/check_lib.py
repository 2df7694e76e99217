#!/usr/bin/env python3
"""Checks of the deployment files that no off-the-shelf tool does; run by deploy/check.sh.

Subcommands (each prints what it found and exits 1 on a problem):
  metrics METRICS_RS FILE...        every mcpgate_* name in FILEs is a metric of METRICS_RS; in
                                    PromQL (alert and test expressions, test series, dashboard
                                    queries, legends, alert annotations) every label is one the
                                    metric has, and known label values (status_class, method,
                                    limit reasons, ...) are spelled as the source spells them
  dashboard JSON RULES_OUT          structure of the Grafana dashboard; writes every PromQL
                                    expression (Grafana variables replaced) as a recording rule to
                                    RULES_OUT for `promtool check rules`
  kubernetes DIR CONFIG_OUT         every manifest parses; kustomization lists them all; the
                                    Deployment, Service, PodMonitor, PDB and ConfigMap agree
                                    (labels, ports, probes, mounts, shutdown timing); writes the
                                    ConfigMap's mcpgate config to CONFIG_OUT
  dockerfile DOCKERFILE CONFIG ROOT instructions, stages, COPY sources, exec-form ENTRYPOINT/CMD,
                                    numeric non-root USER, EXPOSE against CONFIG's ports
  systemd UNIT CONFIG               the unit and its example config agree (PIDFile=, upgrade
                                    socket in RuntimeDirectory=, TimeoutStopSec= > grace)
  prometheus-k8s-job PROMETHEUS_YML OUT
                                    extracts the commented Kubernetes scrape job into OUT as a
                                    complete config (YAML-checked) for promtool

Needs PyYAML for the YAML files (Debian: python3-yaml); the rest is the standard library.
"""

import glob
import json
import os
import re
import sys

try:
    import yaml
except ImportError:  # check.sh picks an interpreter that has it, or skips the YAML checks
    yaml = None

PROBLEMS = []


def problem(msg):
    PROBLEMS.append(msg)
    print(f"  problem: {msg}")


def note(msg):
    print(f"  {msg}")


def finish():
    if PROBLEMS:
        print(f"  {len(PROBLEMS)} problem(s)")
        sys.exit(1)
    sys.exit(0)


def need_yaml():
    if yaml is None:
        print("  PyYAML is not installed (Debian: python3-yaml)")
        sys.exit(2)


# --------------------------------------------------------------------------------------------------
# Durations as mcpgate writes them: 500ms, 5s, 2m, 1h, 1m30s.
DURATION_PART = re.compile(r"(\d+)(ms|s|m|h)")


def seconds(text):
    text = str(text).strip()
    if not re.fullmatch(r"(\d+(ms|s|m|h))+", text):
        raise ValueError(f"not a duration: {text!r}")
    factor = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(int(n) * factor[u] for n, u in DURATION_PART.findall(text))


def port_of(address):
    m = re.fullmatch(r"(\[[^\]]+\]|[^:]+):(\d+)", str(address).strip())
    return int(m.group(2)) if m else None


# --------------------------------------------------------------------------------------------------
# The metrics, as src/observability/metrics.rs defines them.
class Metrics:
    def __init__(self, path):
        src = open(path, encoding="utf-8").read()
        self.names = set(re.findall(r'"(mcpgate_[a-z0-9_]+)"', src))
        consts = dict(re.findall(r'pub const (\w+): &str = "(mcpgate_[a-z0-9_]+)";', src))
        self.labels = {}  # name -> set of labels, for names whose registration was understood
        self.histograms = set()
        reg = re.compile(r'register_(\w+?)!\(\s*(\w+)\s*,\s*"(?:[^"\\]|\\.)*"\s*(?:,\s*&\[([^\]]*)\])?', re.S)
        for kind, const, labels in reg.findall(src):
            name = consts.get(const)
            if name is None:
                continue
            self.labels[name] = set(re.findall(r'"([^"]+)"', labels or ""))
            if kind.startswith("histogram"):
                self.histograms.add(name)
        # Label values the source enumerates.
        def array(const):
            m = re.search(rf"pub const {const}: \[&str; \d+\] = \[([^\]]*)\]", src)
            return set(re.findall(r'"([^"]+)"', m.group(1))) if m else None

        self.values = {}
        for metric, label, const in [
            ("mcpgate_requests_total", "status_class", "STATUS_CLASSES"),
            ("mcpgate_requests_total", "method", "METHODS"),
            ("mcpgate_request_duration_seconds", "method", "METHODS"),
            ("mcpgate_request_ends_total", "end", "REQUEST_ENDS"),
            ("mcpgate_limited_requests_total", "reason", "LIMIT_REASONS"),
            ("mcpgate_session_pinning_failures_total", "reason", "PINNING_REASONS"),
        ]:
            vals = array(const)
            if vals is None:
                note(f"{const} not found in {path}: values of {metric}{{{label}}} not checked")
            else:
                self.values[(metric, label)] = vals
        unparsed = sorted(self.names - set(self.labels))
        if unparsed:
            note("registration not understood (labels not checked): " + ", ".join(unparsed))

    def base(self, token):
        """The metric a series name belongs to, or None."""
        if token in self.names:
            return token
        for suffix in ("_bucket", "_sum", "_count"):
            if token.endswith(suffix) and token[: -len(suffix)] in self.histograms:
                return token[: -len(suffix)]
            if token.endswith(suffix) and token[: -len(suffix)] in self.names:
                return token[: -len(suffix)]
        return None


SELECTOR = re.compile(r"\b(mcpgate_[a-z0-9_]+|up)\s*(\{([^}]*)\})?")
MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
TARGET_LABELS = {"job", "instance"}


def check_promql(m, where, expr, extra_label_refs=()):
    """Labels used in expr (selectors, grouping) and in extra_label_refs exist; known values are
    spelled right. Returns the set of labels the expression may carry."""
    allowed = set(TARGET_LABELS)
    metrics_seen = []
    for sm in SELECTOR.finditer(expr):
        token, body = sm.group(1), sm.group(3)
        base = "up" if token == "up" else m.base(token)
        if base is None:
            continue  # reported by the name check
        labels = set() if base == "up" else m.labels.get(base)
        if labels is None:
            allowed.add("*")
            continue
        own = labels | TARGET_LABELS | ({"le"} if token.endswith("_bucket") else set())
        allowed |= own
        metrics_seen.append(base)
        if body is None:
            continue
        pos = 0
        while pos < len(body):
            mm = MATCHER.match(body, pos)
            if not mm:
                if body[pos:].strip():
                    problem(f"{where}: cannot read the matchers {{{body}}} of {token}")
                break
            pos = mm.end()
            label, op, value = mm.groups()
            if label == "__name__":
                continue
            if label not in own:
                problem(f"{where}: {token} has no label {label!r} (it has: {', '.join(sorted(own))})")
                continue
            known = m.values.get((base, label))
            if known is None or "$" in value:
                continue
            if op in ("=", "!="):
                candidates = [value]
            elif re.fullmatch(r"[A-Za-z0-9_]+(\|[A-Za-z0-9_]+)*", value):
                candidates = value.split("|")
            else:
                continue
            for v in candidates:
                if v not in known:
                    problem(f"{where}: {token}{{{label}{op}\"{value}\"}}: {v!r} is not a value of {label} ({', '.join(sorted(known))})")
    if "*" in allowed:
        return None
    for gm in GROUPING.finditer(expr):
        for label in [x.strip() for x in gm.group(2).split(",") if x.strip()]:
            if label not in allowed:
                problem(f"{where}: {gm.group(1)} ({label}): no metric of this expression has that label")
    for label in extra_label_refs:
        if label not in allowed:
            problem(f"{where}: refers to label {label!r}, which no metric of the expression has")
    return allowed


def cmd_metrics(metrics_rs, files):
    m = Metrics(metrics_rs)
    note(f"{len(m.names)} metric names in {metrics_rs}")
    for path in files:
        text = open(path, encoding="utf-8").read()
        used = sorted(set(re.findall(r"\bmcpgate_[a-z0-9_]+\b", text)))
        unknown = [u for u in used if m.base(u) is None]
        for u in unknown:
            problem(f"{path}: unknown metric {u} (not in {metrics_rs})")
        note(f"{path}: {len(used) - len(unknown)} metric names known, {len(unknown)} unknown")
        exprs = []  # (where, expr, labels referenced elsewhere)
        if path.endswith(".json"):
            d = json.loads(text)
            for where, expr, legend in dashboard_exprs(d):
                exprs.append((where, expr, re.findall(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}", legend or "")))
        elif yaml is not None:
            d = yaml.safe_load(text)
            if isinstance(d, dict) and "groups" in d:
                for g in d["groups"]:
                    for r in g.get("rules", []):
                        refs = []
                        for a in (r.get("annotations") or {}).values():
                            refs += re.findall(r"\$labels\.([A-Za-z_][A-Za-z0-9_]*)", a)
                        exprs.append((f"{path}: {r.get('alert') or r.get('record')}", r["expr"], refs))
            elif isinstance(d, dict) and "tests" in d:
                for i, t in enumerate(d["tests"]):
                    for s in t.get("input_series", []):
                        exprs.append((f"{path}: test {i + 1} series", s["series"], []))
                    for e in t.get("promql_expr_test", []):
                        exprs.append((f"{path}: test {i + 1} expr", e["expr"], []))
        else:
            note(f"{path}: labels not checked (no PyYAML)")
        for where, expr, refs in exprs:
            check_promql(m, where, expr, refs)
        if exprs:
            note(f"{path}: {len(exprs)} expressions: labels and label values checked")
    finish()


# --------------------------------------------------------------------------------------------------
def all_panels(panels):
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))


def dashboard_exprs(d):
    """(where, expr, legend) of every PromQL expression of the dashboard."""
    out = []
    for p in all_panels(d.get("panels", [])):
        for t in p.get("targets", []) or []:
            if "expr" in t:
                out.append((f"panel {p.get('id')} {p.get('title')!r} target {t.get('refId')}", t["expr"], t.get("legendFormat", "")))
    for a in d.get("annotations", {}).get("list", []):
        if a.get("expr"):
            out.append((f"annotation {a.get('name')!r}", a["expr"], a.get("textFormat", "")))
    for v in d.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        lv = re.fullmatch(r"\s*label_values\(\s*(.+?)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", q)
        if lv:
            out.append((f"variable {v.get('name')!r}", lv.group(1), "{{" + lv.group(2) + "}}"))
        elif q.strip():
            out.append((f"variable {v.get('name')!r}", q, ""))
    return out


GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__range", "__interval_ms", "__range_s", "__range_ms", "__dashboard", "__from", "__to"}


def substitute(expr):
    for builtin in ("__rate_interval", "__interval", "__range"):
        expr = re.sub(r"\$\{" + builtin + r"\}|\$" + builtin + r"\b", "5m", expr)
    expr = re.sub(r"\$\{([A-Za-z0-9_]+)(:[^}]*)?\}", "x", expr)
    expr = re.sub(r"\[\[([A-Za-z0-9_]+)\]\]", "x", expr)
    expr = re.sub(r"\$([A-Za-z_][A-Za-z0-9_]*)", "x", expr)
    return expr


def cmd_dashboard(path, rules_out):
    try:
        d = json.load(open(path, encoding="utf-8"))
    except json.JSONDecodeError as e:
        problem(f"{path}: not JSON: {e}")
        finish()
    for key in ("title", "uid", "schemaVersion", "panels", "templating"):
        if key not in d:
            problem(f"{path}: no {key!r}")
    if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < 36:
        problem(f"{path}: schemaVersion {d.get('schemaVersion')!r}: expected 36 or newer")
    variables = {v.get("name"): v for v in d.get("templating", {}).get("list", [])}
    for needed in ("datasource", "job", "instance", "endpoint"):
        if needed not in variables:
            problem(f"{path}: no template variable {needed!r}")
    ds = variables.get("datasource", {})
    if ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problem(f"{path}: variable 'datasource' must be a Prometheus data source variable")
    ids = set()
    panels = list(all_panels(d.get("panels", [])))
    for p in panels:
        where = f"panel {p.get('id')} {p.get('title')!r}"
        if p.get("id") in ids:
            problem(f"{where}: duplicate panel id")
        ids.add(p.get("id"))
        gp = p.get("gridPos", {})
        if not all(isinstance(gp.get(k), int) for k in ("h", "w", "x", "y")) or gp.get("x", 0) + gp.get("w", 0) > 24:
            problem(f"{where}: gridPos {gp} is not within the 24-column grid")
        if p.get("type") == "row":
            continue
        if not p.get("title"):
            problem(f"panel {p.get('id')}: no title")
        if (p.get("datasource") or {}).get("uid") != "${datasource}":
            problem(f"{where}: datasource is not ${{datasource}}")
        targets = p.get("targets") or []
        if not targets:
            problem(f"{where}: no query")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs) or None in refs:
            problem(f"{where}: refIds {refs} are not unique")
        for t in targets:
            if (t.get("datasource") or {}).get("uid") != "${datasource}":
                problem(f"{where} target {t.get('refId')}: datasource is not ${{datasource}}")
            if not t.get("expr"):
                problem(f"{where} target {t.get('refId')}: no expr")
    exprs = dashboard_exprs(d)
    rules = []
    for i, (where, expr, _legend) in enumerate(exprs):
        for var in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", expr) + re.findall(r"\[\[([A-Za-z0-9_]+)\]\]", expr):
            if var not in variables and var not in GRAFANA_BUILTINS:
                problem(f"{where}: uses ${var}, which is not a template variable")
        rules.append({"record": f"dashboard:expr_{i + 1}", "expr": substitute(expr)})
        rules[-1]["labels"] = {"where": where}
    with open(rules_out, "w", encoding="utf-8") as f:
        json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, f, indent=1)  # JSON is YAML
    note(f"{len([p for p in panels if p.get('type') != 'row'])} panels, {len(exprs)} PromQL expressions written to {rules_out}")
    finish()


# --------------------------------------------------------------------------------------------------
def cmd_kubernetes(directory, config_out):
    need_yaml()
    files = sorted(glob.glob(os.path.join(directory, "*.yaml")) + glob.glob(os.path.join(directory, "*.yml")))
    docs = {}
    kust = None
    for path in files:
        try:
            loaded = [x for x in yaml.safe_load_all(open(path, encoding="utf-8")) if x is not None]
        except yaml.YAMLError as e:
            problem(f"{path}: not YAML: {e}")
            continue
        name = os.path.basename(path)
        if name in ("kustomization.yaml", "kustomization.yml"):
            kust = loaded[0]
            continue
        for x in loaded:
            if not isinstance(x, dict) or not x.get("apiVersion") or not x.get("kind") or not (x.get("metadata") or {}).get("name"):
                problem(f"{path}: a document without apiVersion, kind or metadata.name")
                continue
            if "namespace" in x["metadata"]:
                problem(f"{path}: {x['kind']} names a namespace; the manifests must stay namespace-agnostic")
            docs[x["kind"]] = (path, x)
    note(f"{len(files)} files parse as YAML: {', '.join(os.path.basename(f) for f in files)}")
    if kust is None:
        problem(f"{directory}: no kustomization.yaml")
    else:
        listed = set(kust.get("resources", []))
        present = {os.path.basename(f) for f in files} - {"kustomization.yaml", "kustomization.yml"}
        for missing in sorted(present - listed):
            problem(f"kustomization.yaml does not list {missing}")
        for extra in sorted(listed - present):
            problem(f"kustomization.yaml lists {extra}, which does not exist")
    for kind in ("ConfigMap", "Deployment", "Service", "PodMonitor", "PodDisruptionBudget"):
        if kind not in docs:
            problem(f"no {kind} in {directory}")
    if PROBLEMS:
        finish()

    cm = docs["ConfigMap"][1]
    dep = docs["Deployment"][1]
    pod = dep["spec"]["template"]["spec"]
    pod_labels = dep["spec"]["template"]["metadata"].get("labels", {})

    def selects(selector, where):
        for k, v in (selector or {}).items():
            if pod_labels.get(k) != v:
                problem(f"{where}: selector {k}={v} does not match the pod labels {pod_labels}")

    selects(dep["spec"]["selector"]["matchLabels"], "Deployment")
    if dep["spec"].get("replicas", 1) < 2:
        problem("Deployment: fewer than 2 replicas")
    containers = [c for c in pod["containers"] if c["name"] == "mcpgate"]
    if len(containers) != 1:
        problem("Deployment: no container named mcpgate")
        finish()
    c = containers[0]
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}

    # The config the pod runs.
    args = c.get("args", [])
    if "-c" not in args:
        problem("Deployment: the container's args do not give -c CONFIG")
        finish()
    conf_path = args[args.index("-c") + 1]
    mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    cm_volume = [n for n, v in volumes.items() if (v.get("configMap") or {}).get("name") == cm["metadata"]["name"]]
    if not cm_volume or cm_volume[0] not in mounts:
        problem("Deployment: the ConfigMap is not mounted")
        finish()
    mount = mounts[cm_volume[0]]
    if "subPath" in mount:
        problem("Deployment: the ConfigMap is mounted with subPath, which never sees updates (reload.watch would not work)")
    if os.path.dirname(conf_path) != mount["mountPath"].rstrip("/"):
        problem(f"Deployment: -c {conf_path} is not in the ConfigMap mount {mount['mountPath']}")
    key = os.path.basename(conf_path)
    if key not in cm.get("data", {}):
        problem(f"ConfigMap: no key {key} (the container runs -c {conf_path})")
        finish()
    text = cm["data"][key]
    with open(config_out, "w", encoding="utf-8") as f:
        f.write(text)
    cfg = yaml.safe_load(text)
    note(f"ConfigMap config ({key}) written to {config_out}")

    listen_port = port_of(cfg.get("listen"))
    admin_port = port_of(cfg.get("admin"))
    if listen_port is None or ports.get("mcp") != listen_port:
        problem(f"container port 'mcp' ({ports.get('mcp')}) is not the config's listen port ({cfg.get('listen')})")
    if admin_port is None or ports.get("admin") != admin_port:
        problem(f"container port 'admin' ({ports.get('admin')}) is not the config's admin port ({cfg.get('admin')})")
    if not str(cfg.get("listen", "")).startswith("0.0.0.0:") or not str(cfg.get("admin", "")).startswith("0.0.0.0:"):
        problem("ConfigMap config: listen and admin must be on 0.0.0.0 in a pod")
    if not (cfg.get("reload") or {}).get("watch"):
        problem("ConfigMap config: reload.watch is not true, so ConfigMap edits would not apply")

    # Probes.
    def probe(name, path):
        pr = c.get(name) or {}
        hg = pr.get("httpGet") or {}
        if hg.get("path") != path or hg.get("port") not in ("admin", admin_port):
            problem(f"{name}: expected httpGet {path} on the admin port, got {hg}")

    probe("readinessProbe", "/readyz")
    probe("livenessProbe", "/healthz")

    # Shutdown timing.
    server = cfg.get("server") or {}
    grace = seconds(server.get("grace_period", "30s"))
    shutdown = seconds(server.get("graceful_shutdown_timeout", "5s"))
    pre = ((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep", {}).get("seconds")
    if not isinstance(pre, int) or pre <= 0:
        problem("Deployment: no preStop sleep (endpoints must be removed before SIGTERM)")
        pre = 0
    tgps = pod.get("terminationGracePeriodSeconds", 30)
    if tgps <= pre + grace + shutdown:
        problem(f"terminationGracePeriodSeconds {tgps} must exceed preStop {pre}s + grace_period {grace:g}s + graceful_shutdown_timeout {shutdown:g}s")
    else:
        note(f"shutdown: preStop {pre}s + grace_period {grace:g}s + graceful_shutdown_timeout {shutdown:g}s < terminationGracePeriodSeconds {tgps}s")

    # Security.
    psc = pod.get("securityContext") or {}
    csc = c.get("securityContext") or {}
    if not (psc.get("runAsNonRoot") or csc.get("runAsNonRoot")):
        problem("runAsNonRoot is not set")
    if not csc.get("readOnlyRootFilesystem"):
        problem("readOnlyRootFilesystem is not set")
    if csc.get("allowPrivilegeEscalation") is not False:
        problem("allowPrivilegeEscalation is not false")
    if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
        problem("capabilities are not dropped (drop: [ALL])")
    res = c.get("resources") or {}
    if not (res.get("requests") or {}).get("cpu") or not (res.get("requests") or {}).get("memory") or not (res.get("limits") or {}).get("memory"):
        problem("resources: requests.cpu, requests.memory and limits.memory are expected")
    writable = [m["mountPath"] for m in c.get("volumeMounts", []) if not m.get("readOnly")]
    for p in (server.get("pid_file"), server.get("upgrade_sock")):
        if p and not any(p.startswith(w.rstrip("/") + "/") for w in writable):
            problem(f"{p} is not on a writable volume (the root file system is read-only)")

    # Service.
    svc = docs["Service"][1]
    selects(svc["spec"].get("selector"), "Service")
    svc_ports = {p["name"]: p for p in svc["spec"]["ports"]}
    for name in ("mcp", "admin"):
        sp = svc_ports.get(name)
        if sp is None:
            problem(f"Service: no port named {name}")
        elif sp.get("targetPort") not in (name, ports.get(name)):
            problem(f"Service port {name}: targetPort {sp.get('targetPort')} is not the container's {name} port")

    # PodMonitor.
    pm = docs["PodMonitor"][1]
    selects((pm["spec"].get("selector") or {}).get("matchLabels"), "PodMonitor")
    eps = pm["spec"].get("podMetricsEndpoints") or []
    if not eps or eps[0].get("port") != "admin" or eps[0].get("path", "/metrics") != "/metrics":
        problem("PodMonitor: expected podMetricsEndpoints port admin, path /metrics")
    job_label = pm["spec"].get("jobLabel")
    if pod_labels.get(job_label) != "mcpgate":
        problem(f"PodMonitor: jobLabel {job_label!r} does not give job=\"mcpgate\" (the alerts select it)")

    # PodDisruptionBudget.
    pdb = docs["PodDisruptionBudget"][1]
    selects((pdb["spec"].get("selector") or {}).get("matchLabels"), "PodDisruptionBudget")
    note("Deployment, Service, PodMonitor, PodDisruptionBudget and ConfigMap agree (labels, ports, probes, mounts, security, timing)")
    finish()


# --------------------------------------------------------------------------------------------------
DOCKER_INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
                       "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "MAINTAINER"}


def cmd_dockerfile(path, config, root):
    lines = open(path, encoding="utf-8").read().split("\n")
    instructions = []  # (line number, keyword, rest)
    buf, start = "", None
    for n, line in enumerate(lines, 1):
        s = line.strip()
        if not buf and (not s or s.startswith("#")):
            continue
        if buf and s.startswith("#"):
            continue  # comment lines inside a continuation are dropped by the parser
        if start is None:
            start = n
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        buf += s
        kw, _, rest = buf.partition(" ")
        instructions.append((start, kw.upper(), rest.strip()))
        buf, start = "", None
    if buf:
        problem(f"{path}: ends inside a line continuation")
    if not lines[0].startswith("# syntax=docker/dockerfile:1"):
        problem(f"{path}: the first line should be the parser directive '# syntax=docker/dockerfile:1' (the cache mounts need it)")
    stages, args, seen_from = [], set(), False
    user = None
    entrypoint = cmd = None
    exposed = set()
    for n, kw, rest in instructions:
        where = f"{path}:{n}"
        if kw not in DOCKER_INSTRUCTIONS:
            problem(f"{where}: unknown instruction {kw}")
            continue
        if not seen_from and kw not in ("ARG", "FROM"):
            problem(f"{where}: {kw} before the first FROM")
        if kw == "ARG":
            args.add(rest.split("=")[0].strip())
        elif kw == "FROM":
            seen_from = True
            parts = rest.split()
            image = parts[0]
            for ref in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", image):
                if ref not in args:
                    problem(f"{where}: FROM uses ${ref}, which no ARG before it declares")
            if ":" not in image.split("/")[-1] or image.endswith(":latest"):
                problem(f"{where}: FROM {image}: pin a tag (not latest)")
            if len(parts) == 3 and parts[1].upper() == "AS":
                stages.append(parts[2].lower())
            user = None  # USER is per stage
        elif kw in ("COPY", "ADD"):
            words = rest.split()
            opts = [w for w in words if w.startswith("--")]
            paths = [w for w in words if not w.startswith("--")]
            frm = [o.split("=", 1)[1] for o in opts if o.startswith("--from=")]
            if frm:
                if frm[0].lower() not in stages:
                    problem(f"{where}: COPY --from={frm[0]}: no such earlier stage")
                continue
            if len(paths) < 2:
                problem(f"{where}: {kw} needs a source and a destination")
                continue
            if len(paths) > 2 and not paths[-1].endswith("/"):
                problem(f"{where}: {kw} of several sources needs a destination ending in /")
            for src in paths[:-1]:
                if not glob.glob(os.path.join(root, src)):
                    problem(f"{where}: {kw} source {src} does not exist in the build context {root}")
        elif kw == "USER":
            user = rest
        elif kw == "EXPOSE":
            for p in rest.split():
                exposed.add(int(p.split("/")[0]))
        elif kw in ("ENTRYPOINT", "CMD"):
            try:
                value = json.loads(rest)
                if not (isinstance(value, list) and all(isinstance(x, str) for x in value)):
                    raise ValueError
            except ValueError:
                problem(f"{where}: {kw} must be a JSON array (exec form): there is no shell in the image")
                continue
            if kw == "ENTRYPOINT":
                entrypoint = value
            else:
                cmd = value
    # Every target Cargo.toml names must be in the build context cargo sees (cargo refuses a
    # manifest whose declared targets are missing, even when building only the binary).
    copied_sources = [w for _, kw, rest in instructions if kw == "COPY"
                      for w in rest.split()[:-1] if not w.startswith("--")]
    cargo_toml = os.path.join(root, "Cargo.toml")
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        tomllib = None
        note("Cargo.toml targets not checked (needs Python 3.11's tomllib)")
    if tomllib is not None and os.path.exists(cargo_toml):
        import fnmatch
        manifest = tomllib.load(open(cargo_toml, "rb"))
        target_paths = [t["path"] for kind in ("bin", "test", "bench", "example")
                        for t in manifest.get(kind, []) if "path" in t]
        if "lib" in manifest and "path" in manifest["lib"]:
            target_paths.append(manifest["lib"]["path"])
        for tp in target_paths:
            covered = any(fnmatch.fnmatch(tp, src) or tp.startswith(src.rstrip("/") + "/") for src in copied_sources)
            if not covered:
                problem(f"{path}: Cargo.toml names {tp}, which no COPY brings into the build stage")
        note(f"Cargo.toml targets covered by COPY: {', '.join(target_paths)}")
    if user is None:
        problem(f"{path}: the final stage has no USER")
    else:
        uid = user.split(":")[0]
        if not uid.isdigit() or int(uid) == 0:
            problem(f"{path}: USER {user}: use a numeric, non-root uid (Kubernetes' runAsNonRoot can only verify numbers)")
    if not entrypoint or os.path.basename(entrypoint[0]) != "mcpgate":
        problem(f"{path}: ENTRYPOINT is not the mcpgate binary")
    if not cmd or "-c" not in cmd:
        problem(f"{path}: CMD does not give -c CONFIG")
    else:
        target = cmd[cmd.index("-c") + 1]
        copied = [rest.split()[-1] for _, kw, rest in instructions if kw == "COPY" and rest.split()[0] == os.path.relpath(config, root)]
        if target not in copied:
            problem(f"{path}: CMD runs -c {target}, but {os.path.relpath(config, root)} is not copied there")
    text = open(config, encoding="utf-8").read()
    want = set()
    for key in ("listen", "admin"):
        m = re.search(rf"^{key}:\s*(\S+)", text, re.M)
        p = port_of(m.group(1)) if m else None
        if p is None:
            problem(f"{config}: no top-level {key}: ADDRESS:PORT")
        else:
            want.add(p)
    if exposed != want:
        problem(f"{path}: EXPOSE {sorted(exposed)} differs from the ports of {config} {sorted(want)}")
    note(f"{len(instructions)} instructions, stages {stages + ['(final)']}, USER {user}, EXPOSE {sorted(exposed)}, ENTRYPOINT {entrypoint}, CMD {cmd}")
    finish()


# --------------------------------------------------------------------------------------------------
def cmd_systemd(unit, config):
    need_yaml()
    settings = {}
    for line in open(unit, encoding="utf-8"):
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            k, v = line.split("=", 1)
            settings.setdefault(k.strip(), []).append(v.strip())
    cfg = yaml.safe_load(open(config, encoding="utf-8"))
    server = cfg.get("server") or {}
    one = lambda k: (settings.get(k) or [None])[-1]
    if one("Type") != "forking":
        problem("Type= is not forking (the unit runs mcpgate -d)")
    execstart = one("ExecStart") or ""
    if " -d" not in f" {execstart}":
        problem("ExecStart= does not pass -d")
    m = re.search(r"-c\s+(\S+)", execstart)
    if not m:
        problem("ExecStart= does not pass -c CONFIG")
    pidfile = one("PIDFile")
    if pidfile != server.get("pid_file"):
        problem(f"PIDFile={pidfile} but the config's server.pid_file is {server.get('pid_file')}")
    rundir = one("RuntimeDirectory")
    if not rundir:
        problem("no RuntimeDirectory=")
    else:
        base = f"/run/{rundir}/"
        for key in ("pid_file", "upgrade_sock"):
            if not str(server.get(key, "")).startswith(base):
                problem(f"server.{key} ({server.get(key)}) is not in {base} (the only directory the unit may write)")
    if one("ExecReload") != "/bin/kill -HUP $MAINPID":
        problem(f"ExecReload={one('ExecReload')}: expected the hot reload /bin/kill -HUP $MAINPID")
    if one("KillMode") not in (None, "control-group"):
        problem(f"KillMode={one('KillMode')}: keep control-group, so a stop also ends a process still draining after an upgrade")
    if one("RemainAfterExit") in ("yes", "true", "1"):
        problem("RemainAfterExit=yes would keep the unit active without a process")
    if one("KillSignal") not in (None, "SIGTERM"):
        problem(f"KillSignal={one('KillSignal')}: SIGTERM is the graceful stop")
    stop = one("TimeoutStopSec")
    grace = seconds(server.get("grace_period", "30s")) + seconds(server.get("graceful_shutdown_timeout", "5s"))
    if stop is None or seconds(stop.replace("sec", "s")) <= grace:
        problem(f"TimeoutStopSec={stop} must exceed grace_period + graceful_shutdown_timeout ({grace:g}s)")
    if "error_log" in server:
        problem("server.error_log is set: the daemon's log would leave the journal")
    note(f"PIDFile={pidfile}, upgrade socket {server.get('upgrade_sock')}, RuntimeDirectory={rundir}, TimeoutStopSec={stop} > {grace:g}s")
    finish()


# --------------------------------------------------------------------------------------------------
def cmd_prometheus_k8s_job(path, out):
    need_yaml()
    text = open(path, encoding="utf-8").read()
    m = re.search(r"^\s*# BEGIN kubernetes job\n(.*?)^\s*# END kubernetes job", text, re.M | re.S)
    if not m:
        problem(f"{path}: no '# BEGIN kubernetes job' ... '# END kubernetes job' block")
        finish()
    body = "\n".join(re.sub(r"^(\s*)# ?", r"\1", line) for line in m.group(1).splitlines())
    try:
        jobs = yaml.safe_load(body)
    except yaml.YAMLError as e:
        problem(f"{path}: the commented Kubernetes job is not YAML once uncommented: {e}")
        finish()
    if not isinstance(jobs, list) or not jobs or "kubernetes_sd_configs" not in jobs[0]:
        problem(f"{path}: the commented block is not a scrape job with kubernetes_sd_configs")
        finish()
    relabel = jobs[0].get("relabel_configs", [])
    if not any(r.get("target_label") == "job" and r.get("replacement") == "mcpgate" for r in relabel):
        problem(f"{path}: the Kubernetes job does not set job=\"mcpgate\" (the alerts select it)")
    with open(out, "w", encoding="utf-8") as f:
        yaml.safe_dump({"global": {"scrape_interval": "15s"}, "scrape_configs": jobs}, f, sort_keys=False)
    note(f"the commented Kubernetes job parses; written to {out}")
    finish()


def main():
    cmds = {
        "metrics": lambda a: cmd_metrics(a[0], a[1:]),
        "dashboard": lambda a: cmd_dashboard(a[0], a[1]),
        "kubernetes": lambda a: cmd_kubernetes(a[0], a[1]),
        "dockerfile": lambda a: cmd_dockerfile(a[0], a[1], a[2]),
        "systemd": lambda a: cmd_systemd(a[0], a[1]),
        "prometheus-k8s-job": lambda a: cmd_prometheus_k8s_job(a[0], a[1]),
    }
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        print(__doc__)
        sys.exit(2)
    cmds[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
