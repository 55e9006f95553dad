#!/usr/bin/env python3
"""Checks of charts/kefu and k8s/ that `make test` runs (see `make chart-check`).

* `helm lint --strict` (Helm's Go SDK through helm-python-sdk) for every value set in
  charts/kefu/ci/, at the oldest and newest Kubernetes versions the chart supports;
* the rendered manifests of every value set validated against the Kubernetes JSON schemas
  (kubernetes-validate), and the CRD instances (ServiceMonitor, ScaledObject) against their
  required fields;
* what every Deployment must have (restricted security context, native gRPC probes, grace
  period longer than the service's drain, config checksum, resources), and that every
  enabled service has its Service, autoscaler and PodDisruptionBudget;
* wrong values rejected by values.schema.json, and impossible combinations rejected by the
  templates (partitions below maxReplicas, several replicas on SQLite);
* k8s/base/kefu.yaml is exactly what the chart renders with k8s/base/values.yaml;
* every service gets the service secret and session-router's address, only session-router the
  operator token, and the NetworkPolicies open to outside callers exactly the public ports
  docs/security.md lists.

Exit status 0 when everything holds; otherwise every failure is listed and the status is 1.
`--write-k8s` regenerates k8s/base/kefu.yaml instead of comparing it.
"""
from __future__ import annotations

import copy
import pathlib
import sys

import helm_python as helm
import kubernetes_validate
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "kefu"
K8S_BASE = ROOT / "k8s" / "base"
KUBE_VERSIONS = ["1.27", "1.37"]
SERVICES = ["session-router", "translation", "intent-classifier", "assistant", "ticket",
            "order-sync", "knowledge", "metrics"]
CONSUMERS = {"session-router", "translation", "intent-classifier", "assistant", "ticket",
             "metrics"}
DATABASE = {"session-router", "ticket", "order-sync", "knowledge", "intent-classifier", "metrics"}

failures: list[str] = []


def fail(msg: str) -> None:
    failures.append(msg)
    print(f"  FAIL {msg}")


def render(values: dict, name: str = "kefu", namespace: str = "kefu") -> list[dict]:
    chart = helm.Chart.load(CHART)
    out = chart.render(values, name=name, namespace=namespace, is_install=True)
    docs = []
    for path, text in sorted(out.items()):
        if not path.endswith(".yaml"):
            continue
        for d in yaml.safe_load_all(text):
            if d:
                d.setdefault("metadata", {}).setdefault("annotations", {})
                d["metadata"]["annotations"].pop("__source", None)
                docs.append(d)
    return docs


# Required shape of the custom resources the chart may render (their CRDs are not in the
# Kubernetes schemas).
def check_crd(doc: dict, where: str) -> None:
    kind, spec = doc["kind"], doc.get("spec", {})
    if kind == "ServiceMonitor":
        if not spec.get("selector", {}).get("matchLabels") or not spec.get("endpoints"):
            fail(f"{where}: ServiceMonitor needs spec.selector.matchLabels and endpoints")
        for e in spec.get("endpoints", []):
            if e.get("port") != "metrics":
                fail(f"{where}: ServiceMonitor endpoint must scrape the metrics port")
    elif kind == "ScaledObject":
        if not spec.get("scaleTargetRef", {}).get("name"):
            fail(f"{where}: ScaledObject needs spec.scaleTargetRef.name")
        triggers = spec.get("triggers") or []
        if not any(t.get("type") == "kafka" for t in triggers):
            fail(f"{where}: ScaledObject has no kafka trigger")
        for t in triggers:
            if t.get("type") == "kafka":
                md = t.get("metadata", {})
                for k in ("bootstrapServers", "consumerGroup", "topic", "lagThreshold"):
                    if not md.get(k):
                        fail(f"{where}: kafka trigger lacks {k}")
        if spec.get("maxReplicaCount", 0) < spec.get("minReplicaCount", 0):
            fail(f"{where}: maxReplicaCount below minReplicaCount")
    else:
        fail(f"{where}: no schema for {doc['apiVersion']} {kind}")


def validate(docs: list[dict], label: str) -> None:
    for d in docs:
        where = f"{label}: {d['kind']}/{d['metadata'].get('name')}"
        for v in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(d, v, strict=True)
            except SchemaNotFoundError:
                check_crd(d, where)
                break
            except ValidationError as e:
                fail(f"{where} (Kubernetes {v}): {str(e).splitlines()[0]}")


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def check_workloads(docs: list[dict], values: dict, label: str) -> None:
    merged = helm.Chart.load(CHART).merge_values(values)
    deployments = by_kind(docs, "Deployment")
    services = by_kind(docs, "Service")
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    pdbs = by_kind(docs, "PodDisruptionBudget")
    scaled = by_kind(docs, "ScaledObject")
    grace = merged["shutdownGraceSeconds"]
    partitions = int(by_kind(docs, "ConfigMap")["kefu"]["data"]["topic-partitions"])
    for svc in SERVICES:
        conf = merged["services"][svc]
        name = f"kefu-{svc}"
        if not conf["enabled"]:
            if name in deployments:
                fail(f"{label}: {svc} is disabled but has a Deployment")
            continue
        dep = deployments.get(name)
        if dep is None:
            fail(f"{label}: no Deployment for {svc}")
            continue
        if name not in services:
            fail(f"{label}: no Service for {svc}")
        keda = merged["keda"]["enabled"] and svc in CONSUMERS
        if conf["autoscaling"]["enabled"] or keda:
            if "replicas" in dep["spec"]:
                fail(f"{label}: {svc} is autoscaled but its Deployment fixes replicas")
            scaler = scaled.get(name) if keda else hpas.get(name)
            if scaler is None:
                fail(f"{label}: {svc} has no {'ScaledObject' if keda else 'HPA'}")
            elif not keda:
                spec = scaler["spec"]
                if spec["maxReplicas"] < spec["minReplicas"]:
                    fail(f"{label}: {svc} HPA maxReplicas < minReplicas")
                if not any(m["type"] == "Resource" for m in spec["metrics"]):
                    fail(f"{label}: {svc} HPA has no CPU target")
            top = conf["autoscaling"]["maxReplicas"]
            if svc in CONSUMERS and partitions < top:
                fail(f"{label}: {partitions} partitions < {svc} maxReplicas {top}")
        if conf["pdb"]["enabled"] and name not in pdbs:
            fail(f"{label}: no PodDisruptionBudget for {svc}")
        pod = dep["spec"]["template"]
        spec = pod["spec"]
        if not pod["metadata"].get("annotations", {}).get("checksum/config"):
            fail(f"{label}: {svc} pods have no checksum/config annotation")
        psc = spec.get("securityContext", {})
        if not psc.get("runAsNonRoot") or psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            fail(f"{label}: {svc} pod securityContext is not restricted")
        if spec.get("terminationGracePeriodSeconds", 30) <= grace:
            fail(f"{label}: {svc} terminationGracePeriodSeconds must exceed the drain ({grace}s)")
        if spec.get("automountServiceAccountToken") is not False:
            fail(f"{label}: {svc} mounts a service account token it never uses")
        if not spec.get("topologySpreadConstraints"):
            fail(f"{label}: {svc} has no topologySpreadConstraints")
        (c,) = spec["containers"]
        sc = c.get("securityContext", {})
        if not (sc.get("readOnlyRootFilesystem") and sc.get("allowPrivilegeEscalation") is False
                and sc.get("runAsNonRoot") and sc.get("capabilities", {}).get("drop") == ["ALL"]):
            fail(f"{label}: {svc} container securityContext is not restricted")
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if "grpc" not in c.get(probe, {}):
                fail(f"{label}: {svc} {probe} is not a native gRPC probe")
        # Readiness asks the named service (NOT_SERVING while the broker or database is
        # away); liveness the process (a pod waiting for its database must not be restarted).
        if c.get("readinessProbe", {}).get("grpc", {}).get("service") != svc:
            fail(f"{label}: {svc} readinessProbe must ask for the service '{svc}'")
        if c.get("livenessProbe", {}).get("grpc", {}).get("service"):
            fail(f"{label}: {svc} livenessProbe must ask for the process (no service name)")
        if not c.get("resources", {}).get("requests"):
            fail(f"{label}: {svc} has no resource requests")
        env = {e["name"]: e for e in c.get("env", [])}
        if svc in DATABASE and "KEFU_DATABASE_URL" not in env:
            fail(f"{label}: {svc} has no KEFU_DATABASE_URL")
        if not env.get("KEFU_SERVICE_SECRET_FILE", {}).get("value", "").startswith("/etc/kefu/auth/"):
            fail(f"{label}: {svc} has no KEFU_SERVICE_SECRET_FILE from the auth Secret")
        if "session-router" not in env.get("KEFU_AUTH_URL", {}).get("value", ""):
            fail(f"{label}: {svc} is not told where credentials are verified (KEFU_AUTH_URL)")
        auth_vol = next((v for v in spec.get("volumes", []) if v["name"] == "auth"), None)
        keys = {i["key"] for i in (auth_vol or {}).get("secret", {}).get("items", [])}
        wants_operator = svc == "session-router"
        if auth_vol is None or (merged["auth"]["operatorTokenKey"] in keys) != wants_operator:
            fail(f"{label}: {svc} must mount the operator token {'' if wants_operator else 'not '}(only session-router verifies it)")
        # The customer-key secret (HMAC of phone numbers and e-mail addresses): exactly the two
        # services that store and compare those keys, which refuse to start without it.
        wants_customer_key = svc in ("session-router", "order-sync")
        if (merged["auth"]["customerKeySecretKey"] in keys) != wants_customer_key or (
            env.get("KEFU_CUSTOMER_KEY_SECRET_FILE", {}).get("value", "").startswith("/etc/kefu/auth/")
            != wants_customer_key
        ):
            fail(f"{label}: {svc} must {'' if wants_customer_key else 'not '}get the customer-key secret (only session-router and order-sync)")
        if merged["migrations"]["enabled"] and svc in DATABASE:
            if env.get("KEFU_MIGRATE", {}).get("value") != "skip":
                fail(f"{label}: with the migration Job, {svc} must start with KEFU_MIGRATE=skip")
        # LLM phrasing: only the knowledge service talks to the provider, and its key comes
        # from the Secret as a file, never as a plain value.
        llm = merged["llm"]
        if svc == "knowledge" and llm["url"]:
            if env.get("KEFU_LLM_URL", {}).get("value") != llm["url"]:
                fail(f"{label}: llm.url is set but knowledge has no KEFU_LLM_URL")
            if llm["existingSecret"]:
                vol = next((v for v in spec.get("volumes", []) if v["name"] == "llm"), None)
                path = env.get("KEFU_LLM_API_KEY_FILE", {}).get("value", "")
                mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
                if (vol is None or vol["secret"]["secretName"] != llm["existingSecret"]
                        or not path.startswith(mounts.get("llm", "/nowhere") + "/")):
                    fail(f"{label}: knowledge must read the LLM key from the Secret {llm['existingSecret']} as a file")
        elif any(k.startswith("KEFU_LLM_") for k in env):
            fail(f"{label}: {svc} gets LLM settings it does not use")
    if merged["migrations"]["enabled"]:
        jobs = by_kind(docs, "Job")
        job = jobs.get("kefu-migrate")
        if job is None:
            fail(f"{label}: migrations.enabled but no migration Job")
        elif "pre-upgrade" not in job["metadata"]["annotations"].get("helm.sh/hook", ""):
            fail(f"{label}: the migration Job is not a pre-install/pre-upgrade hook")
    if merged["networkPolicy"]["enabled"]:
        nps = by_kind(docs, "NetworkPolicy")
        documented = public_ports_documented()
        for svc in SERVICES:
            if not merged["services"][svc]["enabled"]:
                continue
            np = nps.get(f"kefu-{svc}")
            if np is None:
                fail(f"{label}: no NetworkPolicy for {svc}")
                continue
            # Public: rules for callers outside the mesh (no pod selector); metrics aside.
            public = set()
            for rule in np["spec"].get("ingress", []):
                if any("podSelector" in f for f in rule.get("from", [])):
                    continue
                public |= {p["port"] for p in rule.get("ports", []) if p["port"] != "metrics"}
            if public != documented.get(svc, set()):
                fail(f"{label}: {svc} is public on {sorted(public)}, docs/security.md says {sorted(documented.get(svc, set()))}")
    # The embedding server: with `embeddings.enabled`, a Deployment, Service and HPA, and the
    # knowledge service pointed at it; else no such objects.
    emb = merged["embeddings"]
    if emb["enabled"]:
        for kind, objs in (("Deployment", deployments), ("Service", services), ("HorizontalPodAutoscaler", hpas)):
            if "kefu-embeddings" not in objs:
                fail(f"{label}: embeddings.enabled but no {kind} kefu-embeddings")
    elif "kefu-embeddings" in deployments:
        fail(f"{label}: embeddings disabled but a Deployment kefu-embeddings")
    # Both users of the embedding model are pointed at it.
    for user in ("knowledge", "intent-classifier"):
        env = {
            e["name"]: e.get("value")
            for e in deployments.get(f"kefu-{user}", {}).get("spec", {}).get("template", {})
            .get("spec", {}).get("containers", [{}])[0].get("env", [])
        }
        if f"kefu-{user}" not in deployments:
            continue
        if emb["enabled"]:
            if env.get("KEFU_EMBEDDINGS_URL") != "http://kefu-embeddings:8089":
                fail(f"{label}: {user}'s KEFU_EMBEDDINGS_URL is {env.get('KEFU_EMBEDDINGS_URL')!r}")
        elif env.get("KEFU_EMBEDDINGS_URL", emb["url"] or None) != (emb["url"] or None):
            fail(f"{label}: {user}'s KEFU_EMBEDDINGS_URL is not embeddings.url")


# The topics of the mesh (crates/kefu-runtime/src/kafka/mod.rs `topics::ALL`) by consumer.
CATALOG_SOURCE = """
metrics: [kefu.conversation.inbound.v1, kefu.conversation.normalized.v1,
  kefu.conversation.classified.v1, kefu.assist.requests.v1, kefu.ticket.escalations.v1,
  kefu.conversation.outbound.v1, kefu.conversation.replies.v1, kefu.ticket.updates.v1,
  kefu.commerce.orders.v1, kefu.commerce.shipments.v1]
"""


def public_ports_documented() -> dict[str, set[str]]:
    """The "Ports" table of docs/security.md: | service | port | … | public | …"""
    text = (ROOT / "docs" / "security.md").read_text()
    ports: dict[str, set[str]] = {}
    section = text.split("## Ports", 1)[-1].split("\n## ", 1)[0]
    for line in section.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0] in SERVICES:
            if cells[3].lower().startswith("yes"):
                ports.setdefault(cells[0], set()).add(cells[1])
    if not ports:
        fail("docs/security.md has no Ports table naming public ports")
    return ports


LEDGER = "kefu.dlq.replays.v1"


def max_consumer_replicas(values: dict) -> int:
    merged = helm.Chart.load(CHART).merge_values(values)
    return max(
        (c["autoscaling"]["maxReplicas"] if c["autoscaling"]["enabled"] else c.get("replicas", 1))
        for name, c in merged["services"].items()
        if c["enabled"] and name in CONSUMERS
    )


def check_topics_match_code() -> None:
    """Every topic the code declares is in the catalog the chart and the examples use."""
    src = (ROOT / "crates" / "kefu-runtime" / "src" / "kafka" / "mod.rs").read_text()
    import re
    # The replay ledger is written and read by `kefu dlq` only: no service consumes it.
    declared = set(re.findall(r'pub const [A-Z_]+: &str = "(kefu\.[a-z.]+\.v[0-9]+)";', src)) - {LEDGER}
    catalog = {t for svc in yaml.safe_load(CATALOG_SOURCE).values() for t in svc}
    if declared != catalog:
        fail(f"topics in kafka.rs {sorted(declared)} differ from the chart catalog {sorted(catalog)}")
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    for t in declared:
        if t not in helpers:
            fail(f"charts/kefu: topic {t} is missing from kefu.catalog")


# Wrong values that values.schema.json must reject, with why.
INVALID = [
    ("unknown top-level key", {"replicaCount": 3}),
    ("unknown service", {"services": {"chatbot": {"enabled": True}}}),
    ("replicas is not a number", {"services": {"ticket": {"enabled": True, "replicas": "two"}}}),
    ("zero replicas", {"services": {"ticket": {"enabled": True, "replicas": 0}}}),
    ("CPU target over 100%", {"services": {"assistant": {"enabled": True, "autoscaling": {"targetCPUUtilizationPercentage": 150}}}}),
    ("bad pull policy", {"image": {"repository": "x", "pullPolicy": "Sometimes"}}),
    ("digest that is not sha256", {"image": {"repository": "x", "digest": "md5:abc"}}),
    ("bootstrap servers without a port", {"kafka": {"bootstrapServers": "kafka"}}),
    ("unknown security protocol", {"kafka": {"securityProtocol": "tls"}}),
    ("SASL without a secret", {"kafka": {"securityProtocol": "sasl_ssl"}}),
    ("unknown SASL mechanism", {"kafka": {"sasl": {"mechanism": "GSSAPI"}}}),
    ("replication 0", {"kafka": {"topicReplication": 0}}),
    ("log format", {"logFormat": "yaml"}),
    ("OTLP endpoint without a scheme", {"otlpEndpoint": "collector:4317"}),
    ("grace period 0", {"shutdownGraceSeconds": 0}),
    ("seed shop without its key Secret", {"seedShop": {"shopId": "demo", "existingSecret": ""}}),
    ("no auth Secret", {"auth": {"existingSecret": ""}}),
    ("webhook networks that are not CIDRs", {"webhooks": {"allowNetworks": "internal.example.com"}}),
    ("PDB with both minAvailable and maxUnavailable", {"services": {"ticket": {"enabled": True, "pdb": {"enabled": True, "minAvailable": 1, "maxUnavailable": 1}}}}),
    ("ServiceMonitor interval", {"serviceMonitor": {"enabled": True, "interval": "often"}}),
    ("topology spread policy", {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "Maybe"}]}),
    ("negative retention", {"retention": {"messagesDays": -1}}),
    ("retention batch 0", {"retention": {"batch": 0}}),
    ("unknown retention table", {"retention": {"ordersDays": 30}}),
]

# Values the schema allows but the templates must refuse, with a word the message must have.
REFUSED = [
    ("partitions below maxReplicas", {"kafka": {"topicPartitions": 4}}, "topicPartitions"),
    ("several router replicas on SQLite", {"database": {"existingSecret": ""}}, "one replica"),
    ("migration Job without PostgreSQL", {
        "database": {"existingSecret": ""}, "migrations": {"enabled": True},
        "services": {s: {"enabled": True, "replicas": 1, "autoscaling": {"enabled": False}} for s in DATABASE},
    }, "migrations.enabled"),
]


def check_invalid() -> None:
    chart = helm.Chart.load(CHART)
    for why, values in INVALID:
        try:
            chart.validate_schema(values)
        except helm.HelmValuesError:
            continue
        except helm.HelmError as e:  # some SDK builds report schema errors more generally
            if "schema" in str(e).lower() or "values" in str(e).lower():
                continue
            raise
        fail(f"values.schema.json accepted wrong values ({why}): {values}")
    for why, values, word in REFUSED:
        try:
            render(values)
        except helm.HelmError as e:
            if word not in str(e):
                fail(f"refused {why}, but the message does not say {word!r}: {e}")
            continue
        fail(f"the chart rendered {why}: {values}")


def check_checksum() -> None:
    a = render({})
    b = render({"logLevel": "debug"})
    ann = lambda docs: by_kind(docs, "Deployment")["kefu-ticket"]["spec"]["template"]["metadata"]["annotations"]["checksum/config"]  # noqa: E731
    if ann(a) == ann(b):
        fail("changing the config does not change the pods' checksum/config (no rollout)")


# The retention variables each service gets, and the value they come from (docs/operations.md).
RETENTION_ENV = {
    "session-router": {"KEFU_RETENTION_WEBHOOK_DELIVERIES_DAYS": "webhookDeliveriesDays",
                       "KEFU_RETENTION_MESSAGES_DAYS": "messagesDays"},
    "ticket": {"KEFU_RETENTION_TICKET_EVENTS_DAYS": "ticketEventsDays",
               "KEFU_RETENTION_CLOSED_TICKETS_DAYS": "closedTicketsDays"},
    "order-sync": {"KEFU_RETENTION_COMMERCE_EVENTS_DAYS": "commerceEventsDays",
                   "KEFU_RETENTION_CONNECTOR_REJECTIONS_DAYS": "connectorRejectionsDays"},
    "metrics": {"KEFU_RETENTION_SEEN_EVENTS_DAYS": "seenEventsDays"},
}


def check_retention_env() -> None:
    values = {"retention": {"intervalSeconds": 61, "batch": 501, "webhookDeliveriesDays": 1,
                            "messagesDays": 2, "ticketEventsDays": 3, "closedTicketsDays": 4,
                            "commerceEventsDays": 5, "connectorRejectionsDays": 6,
                            "seenEventsDays": 0},
              "services": {s: {"enabled": True} for s in SERVICES}}
    deployments = by_kind(render(values), "Deployment")
    for name in SERVICES:
        env = {e["name"]: e.get("value") for e in
               deployments[f"kefu-{name}"]["spec"]["template"]["spec"]["containers"][0]["env"]}
        want = {k: str(values["retention"][v]) for k, v in RETENTION_ENV.get(name, {}).items()}
        if want:
            want["KEFU_RETENTION_INTERVAL_SECS"] = "61"
            want["KEFU_RETENTION_BATCH"] = "501"
        got = {k: v for k, v in env.items() if k.startswith("KEFU_RETENTION_")}
        if got != want:
            fail(f"{name}: retention environment {got}, expected {want}")


def k8s_base(write: bool) -> None:
    values = yaml.safe_load((K8S_BASE / "values.yaml").read_text()) or {}
    docs = render(values, name="kefu", namespace="kefu")
    header = ("# Rendered from charts/kefu with k8s/base/values.yaml by `make k8s`. Do not edit:\n"
              "# `make test` fails when this file and the chart disagree.\n")
    text = header + yaml.safe_dump_all(docs, sort_keys=True, explicit_start=True)
    target = K8S_BASE / "kefu.yaml"
    if write:
        target.write_text(text)
        print(f"wrote {target.relative_to(ROOT)}")
        return
    if not target.exists() or target.read_text() != text:
        fail("k8s/base/kefu.yaml is out of date with the chart; run `make k8s` and commit it")
    validate(docs, "k8s/base")
    examples = ROOT / "k8s" / "examples"
    postgres = [d for d in yaml.safe_load_all((examples / "postgres" / "postgres.yaml").read_text()) if d]
    validate(postgres, "k8s/examples/postgres")
    db_secret = next((d for d in postgres if d["kind"] == "Secret" and d["metadata"]["name"] == "kefu-database"), None)
    keys = helm.Chart.load(CHART).values["database"]["keys"]
    if db_secret is None or set(db_secret["stringData"]) != set(keys.values()):
        fail("k8s/examples/postgres: the kefu-database Secret must have the chart's database keys")
    strimzi = [d for d in yaml.safe_load_all((examples / "strimzi" / "kafka.yaml").read_text()) if d]
    topics = {d["spec"]["topicName"]: d["spec"] for d in strimzi if d["kind"] == "KafkaTopic"}
    catalog = {t for svc in yaml.safe_load(CATALOG_SOURCE) .values() for t in svc}
    if LEDGER not in topics:
        fail(f"k8s/examples/strimzi: no KafkaTopic for the replay ledger {LEDGER}")
    for t in sorted(catalog):
        for name in (t, t + ".dlq"):
            if name not in topics:
                fail(f"k8s/examples/strimzi: no KafkaTopic for {name}")
            elif topics[name]["partitions"] < max_consumer_replicas(values):
                fail(f"k8s/examples/strimzi: {name} has fewer partitions than a consumer's maxReplicas")
    for overlay in ("dev", "prod-ha"):
        k = yaml.safe_load((ROOT / "k8s" / "overlays" / overlay / "kustomization.yaml").read_text())
        names = {(d["kind"], d["metadata"]["name"]) for d in docs}
        for p in k.get("patches", []):
            t = p.get("target", {})
            if (t.get("kind"), t.get("name")) not in names:
                fail(f"k8s/overlays/{overlay}: patch targets {t} which the base does not have")


def check_readme() -> None:
    """Every value of values.yaml is documented in the chart README's table."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()

    def walk(d: dict, prefix: str = ""):
        for k, v in d.items():
            path = "services.<name>" if prefix == "services" else (f"{prefix}.{k}" if prefix else k)
            opaque = k in ("requests", "limits", "podSecurityContext", "securityContext")
            if isinstance(v, dict) and v and not opaque:
                yield from walk(v, path)
            else:
                yield path

    for path in sorted(set(walk(values))):
        if f"`{path}`" not in readme:
            fail(f"charts/kefu/README.md does not document `{path}`")


def main() -> int:
    if "--write-k8s" in sys.argv:
        k8s_base(write=True)
        return 0
    print(f"helm SDK {helm.helm_sdk_version()}, kubernetes-validate {KUBE_VERSIONS}")
    value_sets = sorted((CHART / "ci").glob("*.yaml"))
    if not value_sets:
        fail("charts/kefu/ci has no value sets")
    for f in value_sets:
        label = f"ci/{f.name}"
        print(f"- {label}")
        values = yaml.safe_load(f.read_text()) or {}
        for kv in ("v1.27.0", "v1.37.0"):
            report = helm.lint(CHART, values, strict=True, kube_version=kv)
            for m in report.get("messages", []):
                if m["severity"] >= 2:
                    fail(f"{label}: helm lint ({kv}): {m['path']}: {m['error']}")
            for e in report.get("errors", []):
                fail(f"{label}: helm lint ({kv}): {e}")
        try:
            docs = render(values)
        except helm.HelmError as e:
            fail(f"{label}: does not render: {e}")
            continue
        validate(docs, label)
        check_workloads(docs, copy.deepcopy(values), label)
        print(f"  {len(docs)} manifests")
    print("- wrong values")
    check_invalid()
    check_checksum()
    check_retention_env()
    check_topics_match_code()
    check_readme()
    print("- k8s/")
    k8s_base(write=False)
    if failures:
        print(f"\n{len(failures)} chart check(s) failed")
        return 1
    print("chart checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
