package api

import "testing"

// FuzzDecode: request bodies come from any app on NATS; decoding must never
// panic, whatever the request type.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"account":"200","slot":"1"}`, `{"slot":"1","to":"201"}`, `{"account":"200"}`,
		`{"slott":"1"}`, `{}`, `{"a":1}{"b":2}`, `[`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var p ParkRequest
		_ = decode(data, &p)
		var r RetrieveRequest
		_ = decode(data, &r)
		var c CallsRequest
		_ = decode(data, &c)
		var q Request
		_ = decode(data, &q)
	})
}
