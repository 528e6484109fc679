// Package state keeps the control plane's view of the switch — channels
// (SIP legs), parked calls and registrations — in a hashicorp/go-memdb
// database.
//
// Every method runs in its own transaction: reads see one consistent
// snapshot, and each write (Park, ClaimParked, UpdateChannel, ...) reads,
// checks and writes inside ONE write transaction, so two callers racing for
// the same number or parked call can never both win. memdb serialises write
// transactions, so there are no other locks in this package.
//
// Objects stored in memdb are shared with every reader and must never be
// modified in place. Getters return copies; writers copy before they change
// anything.
package state
