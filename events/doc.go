// Package events holds callpark's message schema and its NATS plumbing.
//
// The media core and the control plane talk only through NATS, the way an
// ARI application talks to Asterisk:
//
//   - the core publishes what happens on each SIP leg ("channel") as an Event on
//     callpark.v1.events.<customer>.<call>.<type>;
//   - the control plane publishes the product-level events (call.parked,
//     call.retrieved, call.abandoned, ...) on the same subject space;
//   - the control plane drives the core with Command requests on
//     callpark.v1.core.<node>.cmd.<op> (the node owning the leg) and gets a
//     Reply; each core announces itself on callpark.v1.core.<node>.hello.
//
// Every message is JSON with a "v" field holding the schema version (1).
// Subjects carry the version too, so a v2 schema can live beside v1.
package events
