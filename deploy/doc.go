// Package deploy holds no code: it is where the tests live that guard the
// deployment files no Go program reads. They check the root Dockerfile's
// properties by parsing it (no Docker engine is needed, so this is a cheap
// guard, not a build), the release binaries that `make dist` cross-builds
// (ELF machine, no dynamic loader, CGO_ENABLED=0; `go test` builds one arm64
// parkedge itself), and the systemd unit of the edge agent.
package deploy
