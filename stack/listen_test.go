package stack_test

import (
	"bytes"
	"context"
	"io"
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/link/loopback"

	"github.com/mediastack/mediastack/internal/leakcheck"
	"github.com/mediastack/mediastack/stack"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// sizeRecorder is a reader that remembers the largest buffer it was asked
// to fill. Its WriteTo must not be used: Listen's connections hide it.
type sizeRecorder struct {
	r       io.Reader
	largest int
	t       *testing.T
}

func (s *sizeRecorder) Read(p []byte) (int, error) {
	s.largest = max(s.largest, len(p))
	return s.r.Read(p)
}

func (s *sizeRecorder) WriteTo(io.Writer) (int64, error) {
	s.t.Error("ReadFrom used the reader's WriteTo, whose buffer it does not choose")
	return 0, io.ErrUnexpectedEOF
}

// A connection accepted from Listen copies from a reader (its ReadFrom, as
// net/http uses it for files) in LargeWriteSize writes, and what it copies
// arrives whole.
func TestListenCopiesInLargeWrites(t *testing.T) {
	st, err := stack.New(stack.Options{NICs: []stack.NICOptions{{Name: "lo", Link: loopback.New(), Addrs: []string{"198.51.100.1/24"}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	addr := netip.MustParseAddrPort("198.51.100.1:8080")
	l, err := st.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a hang guard
	defer cancel()
	client, err := st.DialTCP(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	client.SetDeadline(time.Now().Add(30 * time.Second))
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	rf, ok := server.(io.ReaderFrom)
	if !ok {
		t.Fatalf("accepted %T: not an io.ReaderFrom", server)
	}

	data := bytes.Repeat([]byte("0123456789abcdef"), 3*stack.LargeWriteSize/16)
	src := &sizeRecorder{r: bytes.NewReader(data), t: t}
	copied := make(chan error, 1)
	go func() {
		n, err := rf.ReadFrom(src)
		if err == nil && n != int64(len(data)) {
			err = io.ErrShortWrite
		}
		server.Close()
		copied <- err
	}()
	got, err := io.ReadAll(client)
	if err != nil {
		t.Fatalf("client read: %v", err)
	}
	if err := <-copied; err != nil {
		t.Fatalf("ReadFrom: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("client got %d bytes, want the %d sent", len(got), len(data))
	}
	if src.largest != stack.LargeWriteSize {
		t.Errorf("ReadFrom read in buffers of up to %d bytes, want %d", src.largest, stack.LargeWriteSize)
	}
}
