//go:build !race

package rawudp

const raceEnabled = false
