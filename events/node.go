package events

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// A leg id names the node whose core owns the leg: "<node>_<uuid>". Control
// planes address a leg's commands to that node (CommandSubject).

// NodeSep separates the node from the rest of a leg id.
const NodeSep = "_"

var nodeRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// ValidNode reports whether s may name a node: lower-case letters, digits
// and '-', at most 32, and never AllNodes.
func ValidNode(s string) bool { return nodeRE.MatchString(s) && s != AllNodes }

// LegID makes a leg id of node.
func LegID(node, unique string) string { return node + NodeSep + unique }

// NodeOf returns the node owning leg id ("" when the id names none).
func NodeOf(id string) string {
	n, _, ok := strings.Cut(id, NodeSep)
	if !ok || !ValidNode(n) {
		return ""
	}
	return n
}

// Announcement is a core saying it is alive, published on
// AnnounceSubject(Node) when it starts, every AnnounceInterval while it runs,
// and with Leaving when it stops. A new Epoch means the node restarted: every
// leg it had is gone.
type Announcement struct {
	V    int    `json:"v"`
	Node string `json:"node"`
	// Epoch is unique to one run of the core.
	Epoch string `json:"epoch"`
	// SIP is the core's SIP address (host:port), where other nodes send
	// the internal legs of cross-node calls.
	SIP string `json:"sip"`
	// Web is the node's receptionist console ("" when it serves none).
	Web     string    `json:"web,omitempty"`
	Started time.Time `json:"started"`
	Time    time.Time `json:"time"`
	Leaving bool      `json:"leaving,omitempty"`
}

// AnnounceInterval is how often a running core announces itself; a node
// not heard of for NodeTimeout is taken for dead.
const (
	AnnounceInterval = time.Second
	NodeTimeout      = 3500 * time.Millisecond
)

// Encode returns the versioned JSON of a.
func (a *Announcement) Encode() []byte {
	a.V = Version
	b, _ := json.Marshal(a)
	return b
}

// DecodeAnnouncement parses and checks an announcement.
func DecodeAnnouncement(data []byte) (*Announcement, error) {
	var a Announcement
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, fmt.Errorf("events: bad announcement: %w", err)
	}
	if a.V != Version || !ValidNode(a.Node) || a.Epoch == "" {
		return nil, fmt.Errorf("events: invalid announcement (v %d, node %q)", a.V, a.Node)
	}
	return &a, nil
}
