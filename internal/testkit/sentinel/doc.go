// Package sentinel runs a private Redis Sentinel group for failover drills:
// a master and one replica (redisserver processes) and three redis-sentinel
// processes watching them with a quorum of two, all on free loopback ports.
// KillMaster ends the master with SIGKILL; the sentinels agree it is down,
// promote the replica and tell their clients (+switch-master), which is
// what go-redis' failover client follows. It never touches the shared
// Redis on 6379.
package sentinel
