//go:build linux

package linkstats

import (
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Reader reads one interface's counters over an rtnetlink socket opened in
// the network namespace of the goroutine that called Open, so it keeps
// asking that namespace whichever thread it runs on later. An interface
// moved to another namespace afterwards is not found there: Read fails.
// It is safe for concurrent use.
type Reader struct {
	mu    sync.Mutex
	fd    int // -1 after close
	index int32
	name  string // checked in answers: the index may name another interface later
	seq   uint32
	buf   []byte
}

// Open returns a Reader of the counters of the interface name.
func Open(name string) (*Reader, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("%s: rtnetlink socket for the interface's counters: %w", name, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: rtnetlink socket for the interface's counters: %w", name, err)
	}
	tv := unix.Timeval{Sec: 1} // a kernel that never answers must not hang a scrape
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	ifi, err := InterfaceIndex(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: interface index: %w", name, err)
	}
	return &Reader{fd: fd, index: int32(ifi), name: name, buf: make([]byte, 1<<14)}, nil
}

// InterfaceIndex looks the interface name up in the caller's namespace.
func InterfaceIndex(name string) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, err
	}
	return int(ifr.Uint32()), nil
}

// Read asks the kernel for the interface's counters now.
func (k *Reader) Read() (Counters, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fd < 0 {
		return Counters{}, unix.EBADF
	}
	k.seq++
	req := make([]byte, unix.NLMSG_HDRLEN+unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], unix.RTM_GETLINK)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST)
	binary.NativeEndian.PutUint32(req[8:], k.seq)
	binary.NativeEndian.PutUint32(req[unix.NLMSG_HDRLEN+4:], uint32(k.index)) // ifinfomsg.ifi_index
	if err := unix.Sendto(k.fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return Counters{}, err
	}
	for {
		n, _, err := unix.Recvfrom(k.fd, k.buf, 0)
		if err != nil {
			return Counters{}, err
		}
		msgs, err := syscall.ParseNetlinkMessage(k.buf[:n])
		if err != nil {
			return Counters{}, err
		}
		for i := range msgs {
			m := &msgs[i]
			if m.Header.Seq != k.seq {
				continue // an answer to an earlier request that timed out
			}
			switch m.Header.Type {
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if errno := int32(binary.NativeEndian.Uint32(m.Data)); errno != 0 {
						return Counters{}, unix.Errno(-errno)
					}
				}
				return Counters{}, ErrNoCounters
			case unix.RTM_NEWLINK:
				return parseLinkStats(m, k.name)
			}
		}
	}
}

func parseLinkStats(m *syscall.NetlinkMessage, name string) (Counters, error) {
	attrs, err := syscall.ParseNetlinkRouteAttr(m)
	if err != nil {
		return Counters{}, err
	}
	for _, a := range attrs {
		if a.Attr.Type == unix.IFLA_IFNAME && strings.TrimRight(string(a.Value), "\x00") != name {
			return Counters{}, unix.ENODEV // moved away; its index names another interface now
		}
	}
	for _, a := range attrs {
		// struct rtnl_link_stats64 starts rx_packets, tx_packets, rx_bytes,
		// tx_bytes, rx_errors, tx_errors, rx_dropped, tx_dropped.
		if a.Attr.Type == unix.IFLA_STATS64 && len(a.Value) >= 8*8 {
			return Counters{
				RxPackets: binary.NativeEndian.Uint64(a.Value[0*8:]),
				TxPackets: binary.NativeEndian.Uint64(a.Value[1*8:]),
				RxDropped: binary.NativeEndian.Uint64(a.Value[6*8:]),
				TxDropped: binary.NativeEndian.Uint64(a.Value[7*8:]),
			}, nil
		}
	}
	return Counters{}, ErrNoCounters
}

// Close releases the socket; Read fails afterwards.
func (k *Reader) Close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fd >= 0 {
		unix.Close(k.fd)
		k.fd = -1
	}
}
