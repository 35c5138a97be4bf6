package relay

import (
	"math"
	"slices"
	"time"
)

// timerSlack rounds the timer's due times up to whole seconds, so that a
// service checks at most once a second (rtpengine's timer ticks once a
// second too).
const timerSlack = time.Second

// deadline returns when r ends if nothing comes, and why. A side is kept
// alive by media for Timeout, or SilentTimeout when it is Silent; the
// relay lives while any side does, and never past FinalTimeout.
func (r *Relay) deadline(o Options) (int64, EndReason) {
	if r.permanent {
		return math.MaxInt64, EndTimeout
	}
	dl, reason := int64(math.MinInt64), EndTimeout
	signal := r.lastSignal.Load()
	for i := range r.sides {
		sd := &r.sides[i]
		last := max(signal, int64(sd.streams[kindRTP].lastRx.Load()), int64(sd.streams[kindRTCP].lastRx.Load()))
		d, why := o.Timeout, EndTimeout
		if sd.silent.Load() {
			d, why = o.SilentTimeout, EndSilentTimeout
		}
		sideDL := int64(math.MaxInt64)
		if d > 0 {
			sideDL = last + int64(d)
		}
		if sideDL > dl {
			dl, reason = sideDL, why
		}
	}
	if o.FinalTimeout > 0 {
		if f := r.created + int64(o.FinalTimeout); f <= dl {
			dl, reason = f, EndFinalTimeout
		}
	}
	return dl, reason
}

// armLocked makes the service's one timer fire by dl (s.mu held).
func (s *Service) armLocked(dl int64) {
	if dl == math.MaxInt64 || s.closed {
		return
	}
	// Service times are 1 ns ahead of the clock (now); round the clock's.
	due := (dl-1+int64(timerSlack)-1)/int64(timerSlack)*int64(timerSlack) + 1
	if s.timerDue != 0 && s.timerDue <= due {
		return
	}
	s.timerDue = due
	delay := time.Duration(due - s.now())
	if s.timer == nil {
		s.timer = s.clock.AfterFunc(delay, s.check)
		return
	}
	s.timer.Reset(delay)
}

// check ends the relays whose deadline passed and arms the timer for the
// next one.
func (s *Service) check() {
	type ended struct {
		info   Info
		reason EndReason
	}
	var done []ended
	now := s.now()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.timerDue = 0
	next := int64(math.MaxInt64)
	for _, r := range s.relays {
		dl, reason := r.deadline(s.opts)
		if now >= dl {
			s.ended[reason]++
			done = append(done, ended{s.removeLocked(r), reason})
			continue
		}
		next = min(next, dl)
	}
	s.armLocked(next)
	s.mu.Unlock()
	slices.SortFunc(done, func(a, b ended) int { return cmpID(a.info.ID, b.info.ID) })
	for _, e := range done {
		s.logEnd(e.info, e.reason)
		if s.opts.OnEnd != nil {
			s.opts.OnEnd(e.info, e.reason)
		}
	}
}
