package csum

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
)

// TestChecksumMatchesNetstack compares every length up to a few vector
// blocks past the threshold, at every alignment, with random, all-zero and
// all-one bytes (the last two hit the end-around carry's edge cases).
func TestChecksumMatchesNetstack(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 2048+8)
	for _, fill := range []string{"random", "zeros", "ones"} {
		for i := range buf {
			switch fill {
			case "random":
				buf[i] = byte(rng.Uint32())
			case "zeros":
				buf[i] = 0
			case "ones":
				buf[i] = 0xff
			}
		}
		for n := 0; n <= 700; n++ {
			for align := range 8 {
				b := buf[align : align+n]
				for _, initial := range []uint16{0, 1, 0xfffe, 0xffff, uint16(rng.Uint32())} {
					if got, want := Checksum(b, initial), checksum.Checksum(b, initial); got != want {
						t.Fatalf("%s: Checksum(len %d, align %d, initial %#x) = %#x, want %#x", fill, n, align, initial, got, want)
					}
				}
			}
		}
		for _, n := range []int{1200, 1472, 1500, 2048} {
			b := buf[:n]
			if got, want := Checksum(b, 0), checksum.Checksum(b, 0); got != want {
				t.Fatalf("%s: Checksum(len %d) = %#x, want %#x", fill, n, got, want)
			}
		}
	}
}

func TestChecksumLarge(t *testing.T) {
	b := make([]byte, 1<<20+3)
	for i := range b {
		b[i] = 0xff
	}
	if got, want := Checksum(b, 0x1234), checksum.Checksum(b, 0x1234); got != want {
		t.Fatalf("Checksum(1 MiB of 0xff) = %#x, want %#x", got, want)
	}
}

func TestChecksumAllocs(t *testing.T) {
	b := make([]byte, 1200)
	if n := testing.AllocsPerRun(100, func() { Checksum(b, 0) }); n != 0 {
		t.Fatalf("Checksum allocates %v times per call, want 0", n)
	}
}

// FuzzChecksum: for any input, initial value and offset, Checksum equals
// netstack's checksum.Checksum.
func FuzzChecksum(f *testing.F) {
	f.Add([]byte{}, uint16(0), uint8(0))
	f.Add(make([]byte, 64), uint16(0xffff), uint8(1))
	f.Add(make([]byte, 1200), uint16(0), uint8(0))
	f.Fuzz(func(t *testing.T, b []byte, initial uint16, offset uint8) {
		if int(offset) > len(b) {
			offset = 0
		}
		b = b[offset:]
		if got, want := Checksum(b, initial), checksum.Checksum(b, initial); got != want {
			t.Fatalf("Checksum(%x, %#x) = %#x, want %#x", b, initial, got, want)
		}
	})
}

// BenchmarkChecksum compares this package with netstack's over media
// payload sizes.
func BenchmarkChecksum(b *testing.B) {
	for _, impl := range []struct {
		name string
		sum  func([]byte, uint16) uint16
	}{{"csum", Checksum}, {"netstack", checksum.Checksum}} {
		for _, size := range []int{20, 64, 172, 512, 1200, 1472} {
			b.Run(fmt.Sprintf("%s/%d", impl.name, size), func(b *testing.B) {
				buf := make([]byte, size)
				for i := range buf {
					buf[i] = byte(i * 7)
				}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				var sink uint16
				for b.Loop() {
					sink += impl.sum(buf, sink)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sums/s")
			})
		}
	}
}

// TestCopyMatchesChecksum: Copy returns Checksum's value and leaves an exact
// copy, for every length and alignment of both buffers, and writes nothing
// past len(src).
func TestCopyMatchesChecksum(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	src := make([]byte, 1600)
	for i := range src {
		src[i] = byte(rng.Uint32())
	}
	dst := make([]byte, 1600+16)
	for n := 0; n <= 1500; n += 1 + n/64 {
		for srcAlign := range 4 {
			for dstAlign := range 4 {
				for i := range dst {
					dst[i] = 0xa5
				}
				s := src[srcAlign : srcAlign+n]
				initial := uint16(rng.Uint32())
				if got, want := Copy(dst[dstAlign:], s, initial), checksum.Checksum(s, initial); got != want {
					t.Fatalf("Copy(len %d) = %#x, want %#x", n, got, want)
				}
				if diff := cmp.Diff(s, dst[dstAlign:dstAlign+n]); diff != "" {
					t.Fatalf("Copy(len %d) copy differs (-want +got):\n%s", n, diff)
				}
				for i, b := range dst[dstAlign+n:] {
					if b != 0xa5 {
						t.Fatalf("Copy(len %d) wrote past the end at %d", n, dstAlign+n+i)
					}
				}
			}
		}
	}
}

// FuzzCopy: Copy's sum equals netstack's and its copy is exact.
func FuzzCopy(f *testing.F) {
	f.Add(make([]byte, 1200), uint16(0))
	f.Add([]byte{0xff}, uint16(0xffff))
	f.Fuzz(func(t *testing.T, src []byte, initial uint16) {
		dst := make([]byte, len(src))
		if got, want := Copy(dst, src, initial), checksum.Checksum(src, initial); got != want {
			t.Fatalf("Copy(%x, %#x) = %#x, want %#x", src, initial, got, want)
		}
		if diff := cmp.Diff(src, dst); diff != "" {
			t.Fatalf("copy differs (-want +got):\n%s", diff)
		}
	})
}

// BenchmarkCopy compares one pass that copies and sums with a copy followed
// by a sum.
func BenchmarkCopy(b *testing.B) {
	for _, impl := range []struct {
		name string
		fn   func(dst, src []byte) uint16
	}{
		{"fused", func(dst, src []byte) uint16 { return Copy(dst, src, 0) }},
		{"copy+csum", func(dst, src []byte) uint16 { copy(dst, src); return Checksum(src, 0) }},
		{"copy+netstack", func(dst, src []byte) uint16 { copy(dst, src); return checksum.Checksum(src, 0) }},
	} {
		for _, size := range []int{172, 1200} {
			b.Run(fmt.Sprintf("%s/%d", impl.name, size), func(b *testing.B) {
				src, dst := make([]byte, size), make([]byte, size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					impl.fn(dst, src)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "copies/s")
			})
		}
	}
}
