// Package archtest holds a test that checks the direction of dependencies
// under media/: the hub stays protocol-agnostic, and the media plane never
// reaches into the control plane.
package archtest
