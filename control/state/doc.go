// Package state keeps the control plane's view of the switch — channels
// (SIP legs), parked calls, pending dials and registrations — in memory.
//
// The tables and their indexes are Go maps behind one lock (schema.go).
// Every method is one transaction: reads see one consistent state, and
// each write (Park, ClaimParked, UpdateChannel, ...) reads, checks and
// writes inside ONE critical section, so two callers racing for the same
// number or parked call can never both win. Observers (OnParked) run
// after the change, outside the lock.
//
// Stored objects are the store's own: getters return copies, writers
// store copies, so nothing outside the package ever holds a stored row.
//
// This replaced hashicorp/go-memdb. memdb's immutable radix trees copy
// the path to every written row in every index, with a watch channel per
// node and a cache of written nodes per transaction: 10-15 µs and about
// 7 KB of garbage per write, and a park+retrieve cycle writes 18 times
// (measured: BenchmarkParkRetrieveCycle 181 µs and 119 KB per cycle, 38 %
// of every byte the whole process allocated under load). Its features
// beyond a transaction — snapshots that outlive a write, watch sets — were
// never used here. A write is now a few map operations.
package state
