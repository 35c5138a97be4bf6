package relay

import (
	"encoding/binary"
	"testing"
	"time"
)

func rtpHeader(pt uint8, seq uint16, ts, ssrc uint32) []byte {
	b := make([]byte, 12)
	b[0], b[1] = 0x80, pt
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], ts)
	binary.BigEndian.PutUint32(b[8:], ssrc)
	return b
}

// TestRTPSourceSequence: RFC 3550 A.1/A.3 over sequence number wrap,
// loss, duplicates, a restart (two packets in sequence after a jump) and
// a new SSRC; the first packet of a source is its probation.
func TestRTPSourceSequence(t *testing.T) {
	var s rtpSource
	var rates [32]uint32
	at := int64(0)
	feed := func(ssrc uint32, seqs ...int) {
		for _, seq := range seqs {
			at += int64(20 * time.Millisecond)
			s.update(rtpHeader(0, uint16(seq), uint32(seq)*160, ssrc), at, &rates)
		}
	}
	check := func(what string, extMax uint32, expected, lost int64, restarts uint64) {
		t.Helper()
		if s.extMax() != extMax || s.expected() != expected || s.priorLost+s.lost() != lost || s.restarts != restarts {
			t.Errorf("%s: ext max %d, expected %d, lost %d, restarts %d; want %d, %d, %d, %d",
				what, s.extMax(), s.expected(), s.priorLost+s.lost(), s.restarts, extMax, expected, lost, restarts)
		}
	}
	feed(1, 65530, 65531, 65532, 65533, 65534, 65535, 0, 1, 2)
	check("wrap", 65536+2, 8, 0, 0)
	feed(1, 6, 7) // 3, 4, 5 lost
	check("loss", 65536+7, 13, 3, 0)
	feed(1, 7, 7) // duplicates
	check("duplicates", 65536+7, 13, 1, 0)
	feed(1, 5) // late: counted, one fewer lost
	check("late", 65536+7, 13, 0, 0)
	feed(1, 40000) // one jump: ignored
	check("jump", 65536+7, 13, 0, 0)
	feed(1, 40001, 40002) // in sequence after it: a restart
	check("restart", 40002, 2, 0, 1)
	feed(1, 40004)
	check("after the restart", 40004, 4, 1, 1)
	feed(2, 100, 101, 102, 104) // a new SSRC keeps what the old one lost
	check("new SSRC", 104, 4, 2, 1)
	if s.ssrc != 2 || s.rate != 8000 {
		t.Errorf("SSRC %d at %d Hz, want 2 at 8000", s.ssrc, s.rate)
	}
}

// TestRTPSourceJitter: packets 20 ms of timestamps apart that arrive
// alternately 5 ms late and on time have an inter-arrival jitter that
// tends to 5 ms; a dynamic payload type has a jitter only with a rate.
func TestRTPSourceJitter(t *testing.T) {
	var s rtpSource
	var rates [32]uint32
	for i := range 300 {
		at := int64(i) * int64(20*time.Millisecond)
		if i%2 == 1 {
			at += int64(5 * time.Millisecond)
		}
		s.update(rtpHeader(8, uint16(i), uint32(i)*160, 9), at+int64(time.Hour), &rates)
	}
	if j := tsDuration(s.jitterTS(), s.rate); j < 4800*time.Microsecond || j > 5*time.Millisecond {
		t.Errorf("jitter %v, want about 5ms (A.8 rounds down to 39 of 40 units)", j)
	}
	s = rtpSource{}
	s.update(rtpHeader(111, 1, 0, 9), 0, &rates)
	if s.rate != 0 {
		t.Errorf("PT 111 with no rate given: %d Hz", s.rate)
	}
	rates[111-96] = 48000
	s = rtpSource{}
	s.update(rtpHeader(111, 1, 0, 9), 0, &rates)
	if s.rate != 48000 {
		t.Errorf("PT 111 given 48000 Hz: %d Hz", s.rate)
	}
}

// TestIsRTCP: RFC 5761's demultiplexing by the second octet.
func TestIsRTCP(t *testing.T) {
	for _, tc := range []struct {
		b    []byte
		want bool
	}{
		{[]byte{0x80, 200, 0, 6, 0, 0, 0, 1}, true},   // SR
		{[]byte{0x81, 201, 0, 7, 0, 0, 0, 1}, true},   // RR
		{[]byte{0x80, 223, 0, 1, 0, 0, 0, 1}, true},   // the last RTCP type
		{[]byte{0x80, 224, 0, 1, 0, 0, 0, 1}, false},  // marker + PT 96
		{[]byte{0x80, 0x80, 0, 1, 0, 0, 0, 1}, false}, // marker + PT 0
		{[]byte{0x80, 72, 0, 1, 0, 0, 0, 1}, false},   // PT 72, no marker
		{[]byte{0x40, 200, 0, 6, 0, 0, 0, 1}, false},  // version 1
		{[]byte{0x80, 200, 0}, false},
	} {
		if got := isRTCP(tc.b); got != tc.want {
			t.Errorf("isRTCP(% x) = %v, want %v", tc.b, got, tc.want)
		}
	}
}
