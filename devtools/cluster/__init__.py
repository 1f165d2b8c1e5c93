"""The HA cluster on one machine (issue 17): `kyufu cluster up|down|status`, `make cluster`.

etcd (3 members) ← Patroni (2 PostgreSQL 18 nodes, synchronous replication) ← HAProxy (leader port, HTTP
port) ← 2 app nodes and 2 worker nodes; Valkey primary + replica watched by 3 Sentinels. Every engine that
decides a failover is an existing one (etcd, Patroni, Sentinel, HAProxy); this package only writes their
configuration and starts them as separate processes with their own ports and data directories.
docs/cluster.md maps each role onto real machines.
"""
