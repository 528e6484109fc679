package events

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
)

// maxReplay bounds the stored events a resuming follower is sent again.
const maxReplay = 10000

// FollowEvents delivers the events of subject stored in the event stream
// (StreamName) after sequence after, then every new one as it is stored,
// each with its stream sequence, in order, until stop is called. With
// after 0 (or a sequence not yet stored) it starts with the events stored
// from now on. from is the sequence it starts after: the cursor of a
// follower that has taken nothing in yet. A follower that resumes with the
// last sequence it saw misses nothing the stream still holds (the
// console's reconnect).
func (b *Bus) FollowEvents(ctx context.Context, subject string, after uint64, fn func(seq uint64, e *Event)) (stop func(), from uint64, err error) {
	js, err := jetstream.New(b.nc)
	if err != nil {
		return nil, 0, err
	}
	st, err := js.Stream(ctx, StreamName)
	if err != nil {
		return nil, 0, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, 0, err
	}
	from = info.State.LastSeq
	if after > 0 && after < from {
		// A follower resuming from far back (a page asleep for hours, or
		// a forged Last-Event-ID) replays at most maxReplay of the
		// stream's events: its board is current anyway.
		from = max(after, from-min(from, maxReplay))
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    from + 1,
	})
	if err != nil {
		return nil, 0, err
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil {
			return
		}
		e, err := DecodeEvent(m.Data())
		if err != nil {
			b.log.Warn("dropping bad event", "subject", m.Subject(), "err", err)
			return
		}
		fn(md.Sequence.Stream, e)
	})
	if err != nil {
		return nil, 0, err
	}
	return cc.Stop, from, nil
}
