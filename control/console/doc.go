// Package console is callpark's web receptionist console: a live parking
// board (slots, parked calls, extensions, the receptionist's own calls)
// and the actions a receptionist takes on it (park my call, retrieve to my
// phone or drag onto any extension, move it to another slot, hang up a
// parked caller), served by
// callparkd itself (--web).
//
// It is an app of the control plane like any NATS API client: every action
// goes through the same control methods and permissions as the call-control
// API (control/api), and a session only ever names its own customer.
//
//	GET  /                 the board (or the sign-in page)
//	POST /login            customer + extension + SIP password, or customer + API token
//	POST /logout
//	GET  /api/board        the board as JSON (a snapshot)
//	GET  /api/events       Server-Sent Events: "board" snapshots and "notice"s
//	POST /api/park         {"slot"|"extension"|"random", "call_id"}: park my call
//	POST /api/retrieve     {"slot"|"extension"|"random", "to"}: ring to (default: me)
//	POST /api/hangup       {"slot"|"extension"|"random"}: hang up a parked call
//	POST /api/move         {"slot"|"extension"|"random", "to_slot"}: move a parked call
//
// Sessions are random 256-bit ids in an HttpOnly, SameSite=Strict cookie
// (Secure over TLS); every POST but the sign-in carries the session's CSRF
// token in the X-Callpark-CSRF header and, from a browser, a same-origin
// Origin. Failed sign-ins count against the address like failed SIP
// digests (core/ban): the address is refused for a while after too many.
//
// The event stream sends the whole board on connect and again, coalesced,
// after every event of the customer: a client that reconnects (EventSource
// does so by itself) is current at once, with nothing to replay, and a
// board can never drift from the control plane's state by a lost delta.
package console
