// Package api is callpark's call-control API for external apps (a
// receptionist console, a web or mobile app): a NATS micro service named
// "callpark" (so `nats micro ls` and `nats micro info callpark` find it)
// with one JSON request/reply endpoint per operation, on versioned subjects
// that carry the customer:
//
//	callpark.v1.api.<customer>.park      park the other party of an account's call
//	callpark.v1.api.<customer>.retrieve  ring an account (or a SIP URI) with a parked call
//	callpark.v1.api.<customer>.slots     every slot, free or busy, with its call
//	callpark.v1.api.<customer>.parked    every parked call with its age and due return
//	callpark.v1.api.<customer>.calls     an account's current calls
//
// Every request carries the customer's API token (dialplan key api.token)
// in the Callpark-Token header or the "token" field; a token of another
// customer, a customer without the API switched on (features.api) or an
// account without the call_control permission gets the error code
// "forbidden". Failures are structured replies, with the micro error headers
// (Nats-Service-Error-Code, Nats-Service-Error) and a body
// {"error":{"code":"...","message":"..."}}; the codes are stable: not_found,
// slot_busy, forbidden, not_parked, invalid_request, unavailable, internal.
//
// Events are not served here: apps subscribe to callpark.v1.events.<customer>.>
// or replay them from the JetStream stream CALLPARK_EVENTS with a durable
// consumer filtered on that subject. Permissions builds the NATS user
// permissions that confine a customer's app to its own subjects;
// examples/nats-server.conf is the same thing as a server configuration.
//
// Client is the Go client the parkctl command uses.
package api
