// Package archtest checks the direction of dependencies across the module:
// the hub stays protocol-agnostic, protocol packages carry no metrics, the
// media plane never reaches into the control plane, views never see models,
// the task compiler stays pure, the wire packages import nothing of either
// side, and the control plane's imports go one way (HTTP surfaces → core →
// models). docs/architecture.md draws the same rules.
package archtest
