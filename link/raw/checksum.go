package raw

import "github.com/mediastack/mediastack/tcpoffload"

// completeChecksum fills in the TCP or UDP checksum of an Ethernet frame
// whose sender left it to checksum offload (the kernel reports
// TP_STATUS_CSUMNOTREADY for such frames, without saying where the sum
// starts), recomputing it from scratch; see tcpoffload.CompleteChecksum.
func completeChecksum(frame []byte) bool { return tcpoffload.CompleteChecksum(frame) }
