package presence

import (
	"encoding/xml"
	"strings"
)

// Document is a dialog-info document (RFC 4235) as a watcher reads it:
// what Body writes, parsed back. The tests and the test phones read
// NOTIFY bodies with it.
type Document struct {
	XMLName xml.Name `xml:"urn:ietf:params:xml:ns:dialog-info dialog-info"`
	Version uint32   `xml:"version,attr"`
	State   string   `xml:"state,attr"` // "full" or "partial"
	Entity  string   `xml:"entity,attr"`
	Dialogs []Dialog `xml:"dialog"`
}

// Dialog is one dialog element of a Document.
type Dialog struct {
	ID        string `xml:"id,attr"`
	Direction string `xml:"direction,attr"`
	State     string `xml:"state"`
	Remote    struct {
		Identity struct {
			Display string `xml:"display,attr"`
			URI     string `xml:",chardata"`
		} `xml:"identity"`
	} `xml:"remote"`
}

// ParseDocument reads a dialog-info body.
func ParseDocument(body []byte) (Document, error) {
	var d Document
	err := xml.Unmarshal(body, &d)
	return d, err
}

// Lamp is what a BLF key shows for the document: the state of its one
// dialog ("confirmed", "terminated", ...), or "none" when it describes no
// dialog (an entity never described) or several.
func (d Document) Lamp() string {
	if len(d.Dialogs) != 1 {
		return "none"
	}
	return strings.TrimSpace(d.Dialogs[0].State)
}
