// Package presence is the core's notifier for the SIP "dialog" event
// package (RFC 6665 subscriptions, RFC 4235 bodies): what an IP phone's BLF
// key watches. It is generic, like the rest of the core: it keeps
// subscriptions to any entity (sip:<user>@<customer domain>) and the last
// state the control plane gave each entity, and it never decides what an
// entity is. The control plane drives it with the core's presence command
// (a parking slot "711" is busy while a call is parked on slot 1).
//
// # Protocol
//
// Subscribe answers an authenticated SUBSCRIBE with 200 OK (To tag, Contact,
// Expires: the asked interval clamped to [MinExpires, MaxExpires], default
// DefaultExpires; below the minimum 423 with Min-Expires), then sends a
// NOTIFY at once with the entity's full state. Every state change, refresh
// and the end of the subscription sends another NOTIFY. Each NOTIFY carries
// the subscription's next version (0, 1, 2, ...) with state="full". A
// refresh with Expires: 0 (unsubscribe) or the expiry of the interval ends
// the subscription with a last NOTIFY "Subscription-State:
// terminated;reason=timeout". A NOTIFY answered 481, with any other
// failure, or not at all within NotifyTimeout drops the subscription
// without a further NOTIFY.
//
// # Body
//
// Busy (a call is parked on the slot; phones light the lamp red):
//
//	<?xml version="1.0" encoding="UTF-8"?>
//	<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="3" state="full" entity="sip:711@demo.callpark.test">
//	  <dialog id="park-711" direction="recipient">
//	    <state>confirmed</state>
//	    <remote>
//	      <identity display="Alice">sip:201@demo.callpark.test</identity>
//	    </remote>
//	  </dialog>
//	</dialog-info>
//
// Free (lamp green): the same dialog with <state>terminated</state> and no
// <remote>. An entity the control plane never described (a phone may watch
// anything) gets a document without any <dialog>: "no dialogs", also green.
// Both forms are what Asterisk and FreeSWITCH send for idle hints, and what
// Yealink, Polycom and Grandstream phones show as idle; `early` is never
// sent. Every string is XML-escaped. See Body and testdata/*.xml.
//
// # Concurrency
//
// Lock order: Server.mu, then sub.mu; never the other way. Server.mu guards
// the subscription and entity tables and the expiry heap; sub.mu guards one
// subscription's NOTIFY sequence (version, CSeq, the pending state). At most
// one goroutine sends the NOTIFYs of a subscription, one at a time, so they
// leave in version order; changes that arrive while one is in flight are
// folded into the next. One goroutine (Run) expires subscriptions with one
// timer over a heap ordered by expiry.
package presence
