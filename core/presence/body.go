package presence

import (
	"encoding/xml"
	"strconv"
	"strings"
)

// State is what the control plane says about an entity.
type State struct {
	// Busy lights the lamp: a dialog in state confirmed. Otherwise the
	// dialog is terminated (lamp free).
	Busy bool
	// Display and User name the far party of a busy entity (the parked
	// caller), shown as <remote><identity display="Display">sip:User@domain.
	Display string
	User    string
}

// Body renders the dialog-info document of one NOTIFY: entityUser at
// domain, in st (known false: the entity was never described and the
// document holds no dialog), with the subscription's version.
func Body(entityUser, domain string, version uint32, st State, known bool) []byte {
	var b strings.Builder
	b.Grow(384)
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="`)
	b.WriteString(strconv.FormatUint(uint64(version), 10))
	b.WriteString(`" state="full" entity="`)
	escape(&b, "sip:"+entityUser+"@"+domain)
	b.WriteString("\">\n")
	if known {
		b.WriteString(`  <dialog id="park-`)
		escape(&b, entityUser)
		b.WriteString("\" direction=\"recipient\">\n")
		if st.Busy {
			b.WriteString("    <state>confirmed</state>\n")
			if st.User != "" {
				b.WriteString("    <remote>\n      <identity")
				if st.Display != "" {
					b.WriteString(` display="`)
					escape(&b, st.Display)
					b.WriteString(`"`)
				}
				b.WriteString(">")
				escape(&b, "sip:"+st.User+"@"+domain)
				b.WriteString("</identity>\n    </remote>\n")
			}
		} else {
			b.WriteString("    <state>terminated</state>\n")
		}
		b.WriteString("  </dialog>\n")
	}
	b.WriteString("</dialog-info>\n")
	return []byte(b.String())
}

func escape(b *strings.Builder, s string) {
	// xml.EscapeText escapes <, >, &, quotes, \t \n \r and replaces
	// invalid characters with U+FFFD: safe inside attributes and text.
	_ = xml.EscapeText(b, []byte(s))
}
