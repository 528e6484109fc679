// Package audio holds the media primitives shared by callpark's core and its
// tests: G.711 μ-law/A-law coding and transcoding (g711.go), tone generation
// and detection (tone.go), and the shared music-on-hold source that lets one
// goroutine feed thousands of parked calls (music.go).
//
// All PCM is 16-bit signed, 8000 Hz, mono; a frame is 20 ms, 160 samples.
package audio

import "time"

// Media constants: G.711 narrowband, 20 ms packetisation.
const (
	SampleRate    = 8000
	FrameDuration = 20 * time.Millisecond
	FrameSamples  = SampleRate * int(FrameDuration) / int(time.Second) // 160
)
