//go:build linux

package tap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

func TestNotTAP(t *testing.T) {
	tap := ifaceInfo{exists: true, hwType: unix.ARPHRD_ETHER, kind: "tun", tunType: unix.IFF_TAP, owner: -1, group: -1}
	for _, tc := range []struct {
		name string
		info ifaceInfo
		want string // "" for no error
		eth  bool
	}{
		{"ms0", ifaceInfo{}, "", false},
		{"ms0", tap, "", false},
		{"ms0", ifaceInfo{exists: true, hwType: unix.ARPHRD_ETHER, kind: "tun"}, "", false}, // a kernel without IFLA_TUN_TYPE
		{"lo", ifaceInfo{exists: true, hwType: unix.ARPHRD_LOOPBACK, flags: unix.IFF_LOOPBACK}, "tap: lo is the loopback interface, not a TAP device", false},
		{"ms1", ifaceInfo{exists: true, hwType: unix.ARPHRD_ETHER, kind: "veth"}, "tap: ms1 is a veth interface, not a TAP device", true},
		{"eth0", ifaceInfo{exists: true, hwType: unix.ARPHRD_ETHER}, "tap: eth0 is an Ethernet interface, not a TAP device", true},
		{"tun0", ifaceInfo{exists: true, hwType: unix.ARPHRD_NONE, kind: "tun", tunType: unix.IFF_TUN}, "tap: tun0 is a TUN device (IP packets, no Ethernet), not a TAP device", false},
		{"wg0", ifaceInfo{exists: true, hwType: unix.ARPHRD_NONE, kind: "wireguard"}, "tap: wg0 is a wireguard interface, not a TAP device", false},
		{"ib0", ifaceInfo{exists: true, hwType: 32}, "tap: ib0 is an interface of hardware type 32 (not Ethernet), not a TAP device", false},
	} {
		err := tc.info.notTAP(tc.name)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s %+v: %v, want no error", tc.name, tc.info, err)
			}
			continue
		}
		var nt *NotTAPError
		if err == nil || err.Error() != tc.want || !errors.As(err, &nt) || nt.Ethernet != tc.eth || nt.Name != tc.name {
			t.Errorf("%s %+v: %v (%+v), want %q with Ethernet %v", tc.name, tc.info, err, nt, tc.want, tc.eth)
		}
	}
}

func TestPermissionError(t *testing.T) {
	tap := ifaceInfo{exists: true, hwType: unix.ARPHRD_ETHER, kind: "tun", tunType: unix.IFF_TAP, owner: -1, group: -1}
	owned, grouped := tap, tap
	owned.owner = 65534
	grouped.group = 65534
	eperm := fmt.Errorf("TUNSETIFF: %w", unix.EPERM)
	for _, tc := range []struct {
		info ifaceInfo
		err  error
		want string
	}{
		{ifaceInfo{}, eperm, "tap: creating TAP ms0 needs CAP_NET_ADMIN (run as root or setcap cap_net_admin,cap_net_raw+ep): TUNSETIFF: operation not permitted"},
		{owned, eperm, "tap: TAP ms0 exists and belongs to uid 65534, and uid 1000 without CAP_NET_ADMIN may not attach to it: " +
			"run as uid 65534, or have it re-created for uid 1000 (ip tuntap del dev ms0 mode tap; ip tuntap add dev ms0 mode tap user 1000): TUNSETIFF: operation not permitted"},
		{grouped, eperm, "tap: TAP ms0 exists and belongs to group 65534, which uid 1000 is not in (and has no CAP_NET_ADMIN): " +
			"run as a member of group 65534, or have it re-created for uid 1000 (ip tuntap del dev ms0 mode tap; ip tuntap add dev ms0 mode tap user 1000): TUNSETIFF: operation not permitted"},
		{tap, eperm, "tap: attaching to TAP ms0 was refused, though its owner and group allow uid 1000 (a security module such as SELinux or AppArmor?): TUNSETIFF: operation not permitted"},
		{owned, unix.EACCES, "tap: opening /dev/net/tun: permission denied: uid 1000 may not open the TUN/TAP device; " +
			"make it usable by all (chmod 0666 /dev/net/tun, its usual mode) or run as root"},
		{owned, unix.EBUSY, "device or resource busy"},
	} {
		err := tc.info.permissionError("ms0", 1000, tc.err)
		if err == nil || err.Error() != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("%+v, %v: %v; want %q wrapping the error", tc.info, tc.err, err, tc.want)
		}
	}
}

// TestParseLinkInfo: IFLA_LINKINFO as the kernel sends it for
// `ip tuntap add dev X mode tap user 65534`.
func TestParseLinkInfo(t *testing.T) {
	attr := func(typ uint16, v []byte) []byte {
		b := make([]byte, 4, 4+len(v)+3)
		binary.NativeEndian.PutUint16(b[0:], uint16(4+len(v)))
		binary.NativeEndian.PutUint16(b[2:], typ)
		b = append(b, v...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	u32 := func(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
	data := append(attr(unix.IFLA_TUN_OWNER, u32(65534)), attr(unix.IFLA_TUN_TYPE, []byte{unix.IFF_TAP})...)
	data = append(data, attr(unix.IFLA_TUN_PERSIST, []byte{1})...)
	linkinfo := append(attr(unix.IFLA_INFO_KIND, []byte("tun\x00")), attr(unix.IFLA_INFO_DATA|unix.NLA_F_NESTED, data)...)
	info := ifaceInfo{exists: true, hwType: unix.ARPHRD_ETHER, owner: -1, group: -1}
	info.parseLinkInfo(linkinfo)
	want := ifaceInfo{exists: true, hwType: unix.ARPHRD_ETHER, kind: "tun", tunType: unix.IFF_TAP, owner: 65534, group: -1, persist: true}
	if info != want || !info.isTAP() {
		t.Errorf("parsed %+v, want %+v", info, want)
	}
	// A truncated attribute ends the walk without a panic.
	info.parseLinkInfo(linkinfo[:len(linkinfo)-3])
}
