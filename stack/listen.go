package stack

import (
	"io"
	"net"
	"net/netip"
	"sync"
)

// LargeWriteSize is the size of the writes with which a connection from
// Listen copies from a reader (its ReadFrom).
const LargeWriteSize = 1 << 20

// Listen listens for TCP on laddr, as ListenTCP does, for servers that copy
// files or streams to their connections, such as net/http: each accepted
// connection implements io.ReaderFrom with LargeWriteSize writes. net/http
// copies a file to a connection without ReadFrom in 32 KB writes, and each
// write is a pass through netstack's send path; 1 MB writes let netstack
// fill 64 KB packets (TCP offload's) back to back.
//
//	l, err := st.Listen(netip.MustParseAddrPort("198.51.100.2:80"))
//	...
//	go http.Serve(l, http.FileServer(http.Dir("/srv/media")))
func (s *Stack) Listen(laddr netip.AddrPort) (net.Listener, error) {
	l, err := s.ListenTCP(laddr)
	if err != nil {
		return nil, err
	}
	return largeWriteListener{l}, nil
}

// largeWriteListener hands out largeWriteConns.
type largeWriteListener struct{ net.Listener }

func (l largeWriteListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return largeWriteConn{c}, nil
}

// largeWriteConn is a connection whose ReadFrom copies in large writes.
type largeWriteConn struct{ net.Conn }

var largeWriteBufs = sync.Pool{New: func() any { return new([LargeWriteSize]byte) }}

// ReadFrom implements io.ReaderFrom with LargeWriteSize writes. r's own
// WriteTo is hidden too: *os.File's would copy through a 32 KB buffer of
// its own, there being no sendfile to a user-space connection.
func (c largeWriteConn) ReadFrom(r io.Reader) (int64, error) {
	buf := largeWriteBufs.Get().(*[LargeWriteSize]byte)
	defer largeWriteBufs.Put(buf)
	return io.CopyBuffer(struct{ io.Writer }{c.Conn}, struct{ io.Reader }{r}, buf[:])
}
