// Package core is callpark's media core: a generic SIP back-to-back user
// agent on sipgo's transaction layer that terminates RTP on every leg.
//
// The core knows SIP, RTP, prompts and music, but nothing about parking. It
// authenticates phones (registrar) and trunks, turns every SIP leg into a
// "channel" with an id, publishes what happens on it as events, and executes
// commands (answer, play, music, dial, bridge, hangup, ...) sent by the
// control plane over NATS — the way Asterisk serves an ARI application.
//
// A leg costs no goroutine while it lasts. Its SIP dialog is a few
// strings (dialog.go): requests reach it through dispatch, which keeps a
// new INVITE's transaction for the leg to answer later instead of parking
// a goroutine on it; the INVITE itself is dropped once the answer is
// ACKed. Its RTP is a socket pair read by the media engine's pollers
// (package rtp), its SDP is package sdp's.
//
// Media of a channel, once it is up, is written by exactly one source at a
// time (see outMode): nothing, music on hold (a shared hub paces one encoded
// stream for all listeners, one pacing goroutine per core, and its packets
// leave in batches through a raw socket where allowed: musicbatch.go), a
// prompt, or the bridged peer's audio. What the phone sends reaches the
// leg on its poller's goroutine (reader.go), which forwards it to the
// bridged peer, transcoding PCMU<->PCMA when the legs differ, and relays
// RFC 4733 telephone-events.
//
// The core also notifies the SIP dialog event package (BLF keys, package
// presence): it keeps phones' SUBSCRIBE dialogs for any entity of their
// customer and sends them the state the control plane sets with the
// presence command (a parking slot is busy or free).
//
// # Ordering
//
// Events of one leg are published in the order they happen, and an event
// that a phone's next action depends on goes out before the phone can act:
// call.answered of a dialed leg before its ACK, call.held before the 200 OK
// of the hold re-INVITE; hold and REFER handling wait until call.answered of
// their leg is out. Commands on a leg whose 200 OK still waits for the
// caller's ACK act at once (its media is up); a hangup then waits for the
// ACK (bounded) before its BYE, as RFC 3261 15 asks.
//
// # Locks
//
// Lock order, outer first: Core.mu (channel maps) is never held while
// taking another lock; channel.answerMu before channel.mu; sender.ctl (mode
// changes) before sender.mu (RTP packetizer). The music hub calls
// sender.MusicFrame, which takes only sender.mu, and sender.ctl holders may
// call Hub.Add/Remove (which wait for a delivery in progress): MusicFrame
// must therefore never take sender.ctl.
package core
