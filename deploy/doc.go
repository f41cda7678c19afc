// Package deploy holds Portier's deployment files (Kubernetes manifests,
// systemd units, the container image and sample configs); it has no code,
// only the tests that check those files against the portier binary.
package deploy
