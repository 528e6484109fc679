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
	// callpark.v1.events.<customer>.<call>.<type>.
	EventsPrefix = "callpark." + subjectVer + ".events"
	// CommandPrefix is the root of core command subjects:
	// callpark.v1.core.cmd.<op>.
	CommandPrefix = "callpark." + subjectVer + ".core.cmd"
	// AllEvents matches every event of every customer.
	AllEvents = EventsPrefix + ".>"
)

// EventSubject returns the subject an event is published on. The event type
// ("call.parked") keeps its dot, so subscribers may filter with
// callpark.v1.events.<customer>.*.call.parked.
func EventSubject(customer, call, typ string) string {
	return EventsPrefix + "." + token(customer) + "." + token(call) + "." + typ
}

// CustomerEvents matches every event of one customer.
func CustomerEvents(customer string) string {
	return EventsPrefix + "." + token(customer) + ".>"
}

// CommandSubject returns the subject of a core command.
func CommandSubject(op string) string { return CommandPrefix + "." + op }

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
