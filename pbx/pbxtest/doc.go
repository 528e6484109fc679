// Package pbxtest starts a real callpark service and real SIP phones on
// 127.0.0.1 for end-to-end tests, in one line each:
//
//	pbx := pbxtest.Start(t)
//	john := pbx.Phone(t, "demo", "333")
//	call := john.Dial(t, "201")
//	call.SendTone(1000)
//	other.ExpectTone(t, 1000)
//
// Phones are diago user agents that register with digest authentication,
// place and answer calls, hold, transfer (REFER), and check audio by tone
// detection (Goertzel) on what they actually receive over RTP.
package pbxtest
