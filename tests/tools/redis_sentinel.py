"""A Redis master, its replica and three Sentinels of the tests' own.

scripts/stack with TADAK_REDIS_SENTINEL=1 in a state directory of its own,
only the Redis services started (no Kafka, no PostgreSQL): a failover test
kills this master, never the shared stack's. Ports: Redis on a free port P,
the replica on P+1000, sentinel-N on P+1000+N (the stack's layout).

    s = SentinelStack(tmp_dir)      picks the ports
    s.up()                          redis, redis-replica, sentinels; waits
    s.url                           redis+sentinel://.../tadak/0 (scripts/stack env)
    s.master_port(n)                the master's port as sentinel-n names it
    s.kill("redis")                 SIGKILL, wait until its port is closed
    s.clean()                       stop everything, remove the state

SentinelStack(dir, tls=True): every node and Sentinel TLS-only
(TADAK_REDIS_TLS=1), s.url is rediss+sentinel://...?tls_ca=, s.ca the CA.
"""
import importlib.util
import os
import random
import subprocess
from pathlib import Path

import redis as redis_lib

REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "scripts" / "stack"
MASTER_NAME = "tadak"


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# wait_for and port_free, the integration suite's (the chaos suite uses them too).
_itest = _load("tadak_itest_conftest", REPO / "tests" / "integration" / "conftest.py")
wait_for, port_free = _itest.wait_for, _itest.port_free


def pick_redis_port():
    rnd = random.SystemRandom()
    for _ in range(200):
        p = rnd.randrange(21000, 27990)
        if all(port_free(q) for q in (p, p + 1000, p + 1001, p + 1002, p + 1003)):
            return p
    raise RuntimeError("no free port P in 21000-27989 with P+1000..P+1003 free")


class SentinelStack:
    def __init__(self, state_dir, redis_port=None, tls=False):
        self.dir = Path(state_dir)
        self.tls = tls
        self.ca = self.dir / "redis" / "tls" / "ca.pem"
        p = redis_port or pick_redis_port()
        self.ports = {"redis": p, "redis-replica": p + 1000,
                      **{f"sentinel-{n}": p + 1000 + n for n in (1, 2, 3)}}
        self.url = None

    def _env(self):
        p = self.ports["redis"]
        e = dict(os.environ)
        e.pop("TADAK_KAFKA_BROKERS", None)
        # Kafka and PostgreSQL are never started here; their ports only
        # have to be valid numbers.
        e.update(TADAK_STACK_DIR=str(self.dir), TADAK_REDIS_PORT=str(p),
                 TADAK_KAFKA_PORT=str(p + 1), TADAK_PG_PORT=str(p + 3),
                 TADAK_REDIS_SENTINEL="1", TADAK_REDIS_TLS="1" if self.tls else "0")
        return e

    def cmd(self, *args, timeout=120, check=True):
        r = subprocess.run([str(STACK), *args], env=self._env(), capture_output=True, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"scripts/stack {' '.join(args)} failed ({r.returncode}):\n"
                                 f"{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
        return r

    def up(self):
        for svc in ("redis", "redis-replica", "sentinels"):
            self.cmd("start-service", svc)
        line = self.cmd("env").stdout
        self.url = line.split("REDIS_URL=", 1)[1].split()[0]

    def client(self, svc, **kw):
        if self.tls:
            kw.update(ssl=True, ssl_ca_certs=str(self.ca))
        return redis_lib.Redis(host="127.0.0.1", port=self.ports[svc], socket_timeout=2,
                               socket_connect_timeout=2, **kw)

    def master_port(self, n):
        """The master's port as sentinel-n names it; None when it does not answer."""
        try:
            with self.client(f"sentinel-{n}") as c:
                addr = c.execute_command("SENTINEL", "get-master-addr-by-name", MASTER_NAME)
        except redis_lib.exceptions.RedisError:
            return None
        return int(addr[1]) if addr else None

    def agreed_master(self):
        """The master's port when all three Sentinels name the same one, else None."""
        ports = {self.master_port(n) for n in (1, 2, 3)}
        return ports.pop() if len(ports) == 1 and None not in ports else None

    def role(self, svc):
        try:
            with self.client(svc) as c:
                return c.execute_command("ROLE")[0].decode()
        except redis_lib.exceptions.RedisError:
            return None

    def kill(self, svc):
        self.cmd("kill", svc)
        wait_for(lambda: port_free(self.ports[svc]), 30, f"{svc}'s port to close")

    def start(self, svc):
        self.cmd("start-service", svc)

    def status(self):
        return self.cmd("status", check=False).stdout

    def clean(self):
        self.cmd("clean", check=False)

    def master_service(self):
        """The service ("redis" or "redis-replica") the Sentinels agree is the master."""
        port = self.agreed_master()
        return next((svc for svc, p in self.ports.items() if p == port), None)

    def replica_ready(self, n):
        """sentinel-n knows a replica in good standing (one a failover can promote)."""
        try:
            with self.client(f"sentinel-{n}") as c:
                reps = c.execute_command("SENTINEL", "replicas", MASTER_NAME)
        except redis_lib.exceptions.RedisError:
            return False
        for r in reps:
            fields = dict(zip(r[::2], r[1::2])) if isinstance(r, list) else r
            flags = fields.get(b"flags", b"").decode()
            link = fields.get(b"master-link-status", b"").decode()
            if flags == "slave" and link == "ok":
                return True
        return False

    def restore(self, timeout=60):
        """Every node and Sentinel running again, the Sentinels agreed on a master
        and each knowing a healthy replica: ready for the next failover."""
        for svc in ("redis", "redis-replica", "sentinels"):
            self.start(svc)
        wait_for(lambda: self.agreed_master() and all(self.replica_ready(n) for n in (1, 2, 3)),
                 timeout, "the Sentinels to agree on a master and know a healthy replica",
                 interval=0.2)
