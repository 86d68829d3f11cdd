"""docker-compose.yml, validated by a real Compose implementation's parser.

No container engine runs where the tests run, but `docker-compose config`
parses, validates (schema, service references, depends_on conditions) and
resolves a Compose file without one; scripts/setup installs Debian's
docker-compose for it. Both configurations are checked: the default one and
`--profile cluster`, whose three Kafka nodes must carry the settings that
`TADAK_KAFKA_BROKERS=3 scripts/stack` gives its own nodes.
"""
import json
import re
import shutil
import subprocess

import pytest

from conftest import REPO

COMPOSE_FILE = REPO / "docker-compose.yml"
NODES = ("kafka-1", "kafka-2", "kafka-3")
# scripts/stack settings that are tuning for a 2-core test machine (or
# loopback-only listeners), not deployment settings the profile must share.
NOT_MIRRORED = {"log.retention.ms", "log.retention.bytes", "num.network.threads",
                "num.io.threads", "listener.security.protocol.map"}


@pytest.fixture(scope="module")
def compose_bin():
    path = shutil.which("docker-compose")
    assert path, "docker-compose not found: scripts/setup installs it (Debian package)"
    return path


def compose(compose_bin, *args, file=COMPOSE_FILE):
    return subprocess.run([compose_bin, "-f", str(file), "--project-directory", str(REPO), *args],
                          capture_output=True, text=True, timeout=120)


def resolved(compose_bin, *profile):
    """The configuration as Compose resolves it, as a dict."""
    p = compose(compose_bin, *profile, "config", "--format", "json")  # Compose v2
    if p.returncode == 0 and p.stdout.lstrip().startswith("{"):  # v1: usage, status 0
        return json.loads(p.stdout)
    p = compose(compose_bin, *profile, "config")  # Compose v1 prints YAML only
    assert p.returncode == 0, p.stderr
    # v1 is a Python program with PyYAML: let its own interpreter convert.
    with open(compose_bin, "rb") as f:
        interp = f.readline().decode().removeprefix("#!").split()
    conv = subprocess.run([*interp, "-c", "import json, sys, yaml; "
                           "json.dump(yaml.safe_load(sys.stdin), sys.stdout)"],
                          input=p.stdout, capture_output=True, text=True, timeout=60)
    assert conv.returncode == 0, conv.stderr
    return json.loads(conv.stdout)


def env_of(service):
    return {k: str(v) for k, v in service["environment"].items()}


def stack_cluster_properties():
    """The key=value settings scripts/stack writes for every cluster node
    (those without a shell expansion: ports, paths and ids differ per node)."""
    text = (REPO / "scripts" / "stack").read_text()
    body = re.search(r'server\.properties" <<-EOF\n(.*?)\n\tEOF', text, re.S).group(1)
    props = {}
    for line in body.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "$" not in line:
            key, value = line.split("=", 1)
            props[key] = value
    return props


def test_default_configuration_is_valid(compose_bin):
    p = compose(compose_bin, "config", "--quiet")
    assert p.returncode == 0, p.stderr
    cfg = resolved(compose_bin)
    default = {name for name, svc in cfg["services"].items() if not svc.get("profiles")}
    assert default == {"kafka", "redis", "postgres", "producer", "consumer"}
    for name in ("producer", "consumer"):
        svc = cfg["services"][name]
        assert env_of(svc)["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert set(svc["depends_on"]) == {"kafka", "redis", "postgres"}


def test_cluster_profile_is_valid_and_mirrors_the_stack(compose_bin):
    p = compose(compose_bin, "--profile", "cluster", "config", "--quiet")
    assert p.returncode == 0, p.stderr
    cfg = resolved(compose_bin, "--profile", "cluster")
    services = cfg["services"]
    cluster = {name for name, svc in services.items() if "cluster" in svc.get("profiles", ())}
    assert cluster == {*NODES, "producer-cluster", "consumer-cluster"}

    want = {k: v for k, v in stack_cluster_properties().items() if k not in NOT_MIRRORED}
    assert {"default.replication.factor", "min.insync.replicas",
            "offsets.topic.replication.factor"} <= set(want), want
    voters, ids, cluster_ids, host_ports = set(), set(), set(), set()
    for node in NODES:
        env = env_of(services[node])
        for key, value in want.items():
            var = "KAFKA_" + key.upper().replace(".", "_")
            assert env.get(var) == value, \
                f"{node}: {var}={env.get(var)!r}, scripts/stack has {value}"
        ids.add(env["KAFKA_NODE_ID"])
        voters.add(env["KAFKA_CONTROLLER_QUORUM_VOTERS"])
        cluster_ids.add(env["CLUSTER_ID"])
        assert f"PLAINTEXT://{node}:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
        host_ports.update(str(port.get("published", port)) if isinstance(port, dict)
                          else str(port).split(":")[0] for port in services[node]["ports"])
        assert "healthcheck" in services[node]
    assert ids == {"1", "2", "3"} and len(cluster_ids) == 1 and len(host_ports) == 3
    assert voters == {"1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"}

    # The same heap as the stack's nodes.
    stack = (REPO / "scripts" / "stack").read_text()
    heap = re.search(r"KNODE_JAVA=\(java (-Xmx\S+ -Xms\S+)", stack)
    assert env_of(services["kafka-1"])["KAFKA_HEAP_OPTS"] == heap.group(1)

    for name in ("producer-cluster", "consumer-cluster"):
        svc = services[name]
        assert env_of(svc)["KAFKA_BOOTSTRAP_SERVERS"] == ",".join(f"{n}:9092" for n in NODES)
        assert {n: d["condition"] for n, d in svc["depends_on"].items()} == \
            {**{n: "service_healthy" for n in NODES}, "redis": "service_healthy",
             "postgres": "service_healthy"}


def test_the_parser_rejects_a_broken_profile(compose_bin, tmp_path):
    """The validation above is real: a cluster app that depends on a node
    that does not exist is refused."""
    broken = tmp_path / "docker-compose.yml"
    text = COMPOSE_FILE.read_text()
    assert "    kafka-3:\n      condition: service_healthy" in text
    broken.write_text(text.replace("    kafka-3:\n      condition: service_healthy",
                                   "    kafka-4:\n      condition: service_healthy", 1))
    p = compose(compose_bin, "--profile", "cluster", "config", "--quiet", file=broken)
    assert p.returncode != 0 and "kafka-4" in p.stderr, (p.returncode, p.stderr)
