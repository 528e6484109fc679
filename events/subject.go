package events

import "strings"

// Schema version carried in every message and subject.
const (
	Version    = 1
	subjectVer = "v1"
)

// Subject prefixes.
const (
	// EventsPrefix is the root of all event subjects:
	// callpark.v1.events.<customer>.<source>.<call>.<type>, source "core"
	// (what happened on a SIP leg) or "app" (what the parking application
	// made of it).
	EventsPrefix = "callpark." + subjectVer + ".events"
	// CorePrefix is the root of the core's subjects: commands
	// callpark.v1.core.<node>.cmd.<op> and announcements
	// callpark.v1.core.<node>.hello.
	CorePrefix = "callpark." + subjectVer + ".core"
	// AllEvents matches every event of every customer.
	AllEvents = EventsPrefix + ".>"
)

// Sources of events (Event.Source, a subject token).
const (
	SourceCore = "core" // the media core: call.started, call.held, ...
	SourceApp  = "app"  // the control plane: call.parked, slot.busy, ...
)

// CoreEvents matches every core event of every customer: what the control
// plane consumes (never its own output).
const CoreEvents = EventsPrefix + ".*." + SourceCore + ".>"

// EventSubject returns the subject an event is published on. The event type
// ("call.parked") keeps its dot, so subscribers may filter with
// callpark.v1.events.<customer>.app.*.call.parked.
func EventSubject(customer, source, call, typ string) string {
	return EventsPrefix + "." + token(customer) + "." + token(source) + "." + token(call) + "." + typ
}

// CustomerEvents matches every event of one customer.
func CustomerEvents(customer string) string {
	return EventsPrefix + "." + token(customer) + ".>"
}

// AllNodes addresses a command to every core (presence): each executes it
// and the first reply is the answer.
const AllNodes = "all"

// CommandSubject returns the subject of command op for the core of node
// (or AllNodes).
func CommandSubject(node, op string) string {
	return CorePrefix + "." + token(node) + ".cmd." + op
}

// AnnounceSubject is where the core of node announces itself.
func AnnounceSubject(node string) string { return CorePrefix + "." + token(node) + ".hello" }

// AllAnnouncements matches every core's announcements.
const AllAnnouncements = CorePrefix + ".*.hello"

// token makes s safe as one subject token: NATS forbids '.', '*', '>' and
// white space inside a token.
func token(s string) string {
	if s == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '.', '*', '>', ' ', '\t', '\r', '\n':
			return '_'
		}
		return r
	}, s)
}
