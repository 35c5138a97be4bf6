package relay

import (
	"fmt"
	"strings"
)

// Learning is how a relay side learns its peer from the media it receives,
// named as rtpengine's --endpoint-learning names its modes. The zero value
// is LearnDelayed, rtpengine's default. The package doc says what each
// mode does here.
type Learning uint8

// The endpoint-learning modes.
const (
	LearnDelayed Learning = iota
	LearnImmediate
	LearnHeuristic
	LearnOff
	numLearning
)

var learningNames = [numLearning]string{"delayed", "immediate", "heuristic", "off"}

// ParseLearning parses a mode as String spells it.
func ParseLearning(s string) (Learning, error) {
	for l, name := range learningNames {
		if strings.EqualFold(s, name) {
			return Learning(l), nil
		}
	}
	return 0, fmt.Errorf("relay: endpoint learning %q is not one of %s", s, strings.Join(learningNames[:], ", "))
}

// String returns rtpengine's name of the mode.
func (l Learning) String() string {
	if l < numLearning {
		return learningNames[l]
	}
	return fmt.Sprintf("Learning(%d)", uint8(l))
}

// MarshalText implements encoding.TextMarshaler (JSON, flag.TextVar).
func (l Learning) MarshalText() ([]byte, error) {
	if l >= numLearning {
		return nil, fmt.Errorf("relay: invalid endpoint learning %d", uint8(l))
	}
	return []byte(l.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *Learning) UnmarshalText(b []byte) error {
	v, err := ParseLearning(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// PeerState says what a side knows of its peer.
type PeerState uint8

// The peer states.
const (
	// PeerUnknown: no peer given nor learned; what is for the side is
	// dropped (no_peer).
	PeerUnknown PeerState = iota
	// PeerExpected: the side sends to the peer signalling gave, which has
	// not sent anything yet.
	PeerExpected
	// PeerLearned: the side's peer sent media from the address the side
	// sends to (the expected one, or one learned from the media).
	PeerLearned
)

var peerStateNames = [...]string{"unknown", "expected", "learned"}

// String returns the state as the JSON API spells it.
func (s PeerState) String() string {
	if int(s) < len(peerStateNames) {
		return peerStateNames[s]
	}
	return fmt.Sprintf("PeerState(%d)", uint8(s))
}

// EndReason says why a relay ended.
type EndReason uint8

// The reasons a relay ends.
const (
	// EndDeleted: Service.Delete.
	EndDeleted EndReason = iota
	// EndTimeout: no media on any stream for Options.Timeout.
	EndTimeout
	// EndSilentTimeout: the relay was on hold (every side Silent) and no
	// media came for Options.SilentTimeout.
	EndSilentTimeout
	// EndFinalTimeout: Options.FinalTimeout after its creation.
	EndFinalTimeout
	// EndClosed: Service.Close.
	EndClosed
	numEndReasons
)

var endReasonNames = [...]string{"deleted", "timeout", "silent_timeout", "final_timeout", "closed"}

// String returns the reason as logs and the JSON API spell it.
func (r EndReason) String() string {
	if int(r) < len(endReasonNames) {
		return endReasonNames[r]
	}
	return fmt.Sprintf("EndReason(%d)", uint8(r))
}
