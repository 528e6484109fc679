package core

// TestingKnobs let a test widen a race window the core must close by
// itself, so that the test fails every time the core does not
// (Config.Testing; nil in production).
type TestingKnobs struct {
	// BeforeDialBridge runs in a dial's answer after the callee has its
	// ACK and the caller its 200 OK, before the two are bridged.
	BeforeDialBridge func()
}
