// Package k8s holds no code: it is where the test lives that decodes every
// manifest in this folder strictly into the Kubernetes API types (k8s.io/api
// at the release DEPENDENCIES.md names), so a misspelt or misplaced field
// fails `make test` instead of a `kubectl apply`, and that checks what ties
// the manifests together: probes on /healthz and /readyz, resources on every
// container, the Service, PDB and HPA pointing at the Deployment's pods, and
// the ConfigMap naming only settings parkcloud reads. No cluster or network
// is needed.
package k8s
