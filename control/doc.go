// Package control is callpark's control plane: the parking application that
// drives the generic media core, the way an ARI application drives Asterisk.
//
// Control subscribes to the core's events on NATS (events.CoreEvents: never its
// own output, which goes out with source "app"), keeps the
// switch's channels, parked calls and registrations in a state.Store, and
// answers each event with core commands (events.Command) chosen from the
// customer's dialplan:
//
//   - an inbound call to an extension or DID is dialed to the account's
//     phones and bridged on answer (dial with Bridge);
//   - a phone putting its call on hold gives the other party music; taking
//     it off hold bridges them again;
//   - the park code (*70N, *70) dialed while a call is held parks the held
//     party under N or a random number, speaks the retrieval code and frees
//     the parker's phone; a REFER to a park code or a slot does the same
//     without the spoken confirmation (the phone gets the NOTIFY);
//   - the release codes (*71N, *71, *71*N, 71S) claim a parked call in one
//     state transaction and bridge it to the dialing phone;
//   - a parked party hanging up frees its number at once (call.abandoned).
//
// Control publishes the product events call.parked, call.retrieved and
// call.abandoned, and ignores them (and every other event type it
// publishes) when they come back on its own subscription.
//
// # Concurrency
//
// One NATS subscription feeds a fixed pool of workers; an event goes to
// worker hash(e.Call) mod Workers, so the events of one leg are handled in
// order while a slow command on one call never holds up calls on other
// workers, even calls of the same phone. A new call or a transfer of a
// phone waits until that phone's earlier events are handled ("John holds,
// then dials *70"; order.go). Each worker has an unbounded queue, so the
// NATS delivery goroutine never blocks (internal/mailbox). Handlers of
// different legs run concurrently and may touch the same records: every
// read-modify-write of a record is one state transaction
// (state.Store.UpdateChannel, Park, ClaimParked; Connect pairs the two
// legs of a retrieval, and Retrieve also takes the call off parking, so an
// automatic return and a manual retrieval have one winner), and no lock is
// held while a command is in flight.
package control
