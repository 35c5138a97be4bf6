package vnet

import "testing"

// TestAppendPacketReusesSlots: a batch built again in the same slice reuses
// its packets and their Parts, and starts each packet with no parts.
func TestAppendPacketReusesSlots(t *testing.T) {
	hdr, payload := make([]byte, 54), make([]byte, 1448)
	build := func(pkts []Packet) []Packet {
		for i := 0; i < 4; i++ {
			var p *Packet
			pkts, p = AppendPacket(pkts, Hdr{GSOSize: uint16(i)})
			p.Parts = append(p.Parts, hdr, payload)
		}
		return pkts
	}
	pkts := build(nil)
	if allocs := testing.AllocsPerRun(100, func() { pkts = build(pkts[:0]) }); allocs != 0 {
		t.Errorf("rebuilding a batch: %v allocations, want 0", allocs)
	}
	for i, p := range pkts {
		if len(p.Parts) != 2 || p.Hdr.GSOSize != uint16(i) {
			t.Errorf("packet %d: header %+v, %d parts, want GSOSize %d and 2 parts", i, p.Hdr, len(p.Parts), i)
		}
	}
}
