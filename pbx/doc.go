// Package pbx assembles a callpark service from its parts: the NATS server
// (embedded by default), the media core, the control plane, the dialplan
// store with live reload and the metrics endpoint, all under one errgroup
// lifecycle. cmd/callparkd and the end-to-end tests (pbxtest) use it, so
// the tests run exactly what production runs.
package pbx
