// Package patroni runs a private, Patroni-managed PostgreSQL pair for
// failover drills: one etcd member as Patroni's consensus store, and two
// nodes, each a Patroni process with its own Debian PostgreSQL cluster in
// a temporary directory, on free loopback ports. Patroni bootstraps the
// first node, clones the second from it over streaming replication, and —
// in synchronous mode, as the drill needs for zero loss of acknowledged
// commits — names it the synchronous standby. Kill ends one node at once,
// Patroni and every PostgreSQL process of it, as a machine that dies would;
// the survivor is then promoted by Patroni when the leader key expires.
// It never touches the shared PostgreSQL on 5432. As root it runs Patroni
// (and so PostgreSQL) as the postgres OS user: initdb refuses root.
package patroni
