package audio

// DTMFDigit maps an RFC 4733 telephone-event code to its key: 0-9, '*'
// (10), '#' (11), 'A'-'D' (12-15); 0 for any other event.
func DTMFDigit(event byte) rune {
	switch {
	case event <= 9:
		return rune('0' + event)
	case event == 10:
		return '*'
	case event == 11:
		return '#'
	case event >= 12 && event <= 15:
		return rune('A' + event - 12)
	}
	return 0
}
