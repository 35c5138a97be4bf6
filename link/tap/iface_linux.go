//go:build linux

package tap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// ifaceInfo is what the kernel says of an existing interface: enough to
// tell a TAP from anything else, and whom a TAP belongs to.
type ifaceInfo struct {
	exists bool
	hwType uint16 // ARPHRD_*
	flags  uint32 // IFF_*
	kind   string // rtnetlink's link kind: "tun", "veth", "bridge"...; "" for hardware and loopback
	// Of a TUN/TAP device (kind "tun"), when the kernel reports them
	// (Linux 4.15 and later).
	tunType      uint8 // unix.IFF_TUN or unix.IFF_TAP; 0 when not reported
	owner, group int64 // -1 when the device has none
	persist      bool
}

// inspect asks rtnetlink about the interface called name in the caller's
// own network namespace (sysfs may show another one).
func inspect(name string) (ifaceInfo, error) {
	rib, err := syscall.NetlinkRIB(syscall.RTM_GETLINK, syscall.AF_UNSPEC)
	if err != nil {
		return ifaceInfo{}, fmt.Errorf("tap: listing interfaces (rtnetlink): %w", err)
	}
	msgs, err := syscall.ParseNetlinkMessage(rib)
	if err != nil {
		return ifaceInfo{}, fmt.Errorf("tap: listing interfaces (rtnetlink): %w", err)
	}
	for i := range msgs {
		m := &msgs[i]
		if m.Header.Type != syscall.RTM_NEWLINK || len(m.Data) < syscall.SizeofIfInfomsg {
			continue
		}
		attrs, err := syscall.ParseNetlinkRouteAttr(m)
		if err != nil {
			continue
		}
		info := ifaceInfo{exists: true, owner: -1, group: -1,
			hwType: binary.NativeEndian.Uint16(m.Data[2:4]), flags: binary.NativeEndian.Uint32(m.Data[8:12])}
		matched := false
		for _, a := range attrs {
			switch a.Attr.Type {
			case unix.IFLA_IFNAME:
				matched = unix.ByteSliceToString(a.Value) == name
			case unix.IFLA_LINKINFO:
				info.parseLinkInfo(a.Value)
			}
		}
		if matched {
			return info, nil
		}
	}
	return ifaceInfo{}, nil
}

// parseLinkInfo reads IFLA_LINKINFO: the kind and, for a TUN/TAP device,
// its type, owner, group and persistence.
func (info *ifaceInfo) parseLinkInfo(b []byte) {
	for typ, v := range nestedAttrs(b) {
		switch typ {
		case unix.IFLA_INFO_KIND:
			info.kind = unix.ByteSliceToString(v)
		case unix.IFLA_INFO_DATA:
			for typ, v := range nestedAttrs(v) {
				switch {
				case typ == unix.IFLA_TUN_TYPE && len(v) >= 1:
					info.tunType = v[0]
				case typ == unix.IFLA_TUN_OWNER && len(v) >= 4:
					info.owner = int64(binary.NativeEndian.Uint32(v))
				case typ == unix.IFLA_TUN_GROUP && len(v) >= 4:
					info.group = int64(binary.NativeEndian.Uint32(v))
				case typ == unix.IFLA_TUN_PERSIST && len(v) >= 1:
					info.persist = v[0] != 0
				}
			}
		}
	}
}

// nestedAttrs iterates over the netlink attributes packed in b.
func nestedAttrs(b []byte) func(yield func(uint16, []byte) bool) {
	return func(yield func(uint16, []byte) bool) {
		for len(b) >= unix.SizeofRtAttr {
			n := int(binary.NativeEndian.Uint16(b[0:2]))
			typ := binary.NativeEndian.Uint16(b[2:4]) &^ unix.NLA_F_NESTED
			if n < unix.SizeofRtAttr || n > len(b) {
				return
			}
			if !yield(typ, b[unix.SizeofRtAttr:n]) {
				return
			}
			n = (n + unix.NLA_ALIGNTO - 1) &^ (unix.NLA_ALIGNTO - 1)
			if n > len(b) {
				return
			}
			b = b[n:]
		}
	}
}

// isTAP reports whether the interface is a TAP device. Without the TUN
// type (a kernel before 4.15), a tun-kind device carrying Ethernet is one.
func (info ifaceInfo) isTAP() bool {
	if info.kind != "tun" {
		return false
	}
	if info.tunType != 0 {
		return info.tunType == unix.IFF_TAP
	}
	return info.hwType == unix.ARPHRD_ETHER
}

// NotTAPError is New's error when the name is taken by an existing
// interface that is not a TAP device.
type NotTAPError struct {
	Name string
	// Is says what the interface is: "the loopback interface", "a veth
	// interface", "a TUN device"...
	Is string
	// Ethernet reports whether it carries Ethernet frames, so that an
	// AF_PACKET link (link/raw) could run on it as it is.
	Ethernet bool
	// Loopback reports whether it is the loopback interface.
	Loopback bool
}

func (e *NotTAPError) Error() string {
	return fmt.Sprintf("tap: %s is %s, not a TAP device", e.Name, e.Is)
}

// notTAP returns a *NotTAPError when the interface exists and is not a
// TAP device, nil otherwise.
func (info ifaceInfo) notTAP(name string) error {
	if !info.exists || info.isTAP() {
		return nil
	}
	e := &NotTAPError{Name: name, Ethernet: info.hwType == unix.ARPHRD_ETHER}
	switch {
	case info.hwType == unix.ARPHRD_LOOPBACK || info.flags&unix.IFF_LOOPBACK != 0:
		e.Is, e.Ethernet, e.Loopback = "the loopback interface", false, true
	case info.kind == "tun":
		e.Is = "a TUN device (IP packets, no Ethernet)"
	case info.kind != "":
		e.Is = article(info.kind) + " " + info.kind + " interface"
	case e.Ethernet:
		e.Is = "an Ethernet interface"
	default:
		e.Is = fmt.Sprintf("an interface of hardware type %d (not Ethernet)", info.hwType)
	}
	return e
}

func article(word string) string {
	if word != "" && (word[0] == 'a' || word[0] == 'e' || word[0] == 'i' || word[0] == 'o' || word[0] == 'u') {
		return "an"
	}
	return "a"
}

// permissionError explains a TUNSETIFF that failed for want of permission
// (err) on the interface as inspected before: creating a TAP needs
// CAP_NET_ADMIN, and so does attaching to one that belongs to another user
// or to a group the caller is not in. Other errors come back as they are.
func (info ifaceInfo) permissionError(name string, euid int, err error) error {
	if !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EACCES) {
		return err
	}
	// TUNSETIFF refuses with EPERM; EACCES is open(2) refusing the
	// clone device itself.
	if errors.Is(err, unix.EACCES) {
		return fmt.Errorf("tap: opening %s: %w: uid %d may not open the TUN/TAP device; make it usable by all (chmod 0666 %s, its usual mode) or run as root",
			tunDevicePath, err, euid, tunDevicePath)
	}
	if !info.isTAP() {
		return fmt.Errorf("tap: creating TAP %s %s: %w", name, capHint, err)
	}
	remake := fmt.Sprintf("(ip tuntap del dev %s mode tap; ip tuntap add dev %s mode tap user %d)", name, name, euid)
	switch {
	case info.owner >= 0 && info.owner != int64(euid):
		return fmt.Errorf("tap: TAP %s exists and belongs to uid %d, and uid %d without CAP_NET_ADMIN may not attach to it: "+
			"run as uid %d, or have it re-created for uid %d %s: %w", name, info.owner, euid, info.owner, euid, remake, err)
	case info.group >= 0:
		return fmt.Errorf("tap: TAP %s exists and belongs to group %d, which uid %d is not in (and has no CAP_NET_ADMIN): "+
			"run as a member of group %d, or have it re-created for uid %d %s: %w", name, info.group, euid, info.group, euid, remake, err)
	default:
		// Its owner and group let the caller attach: what refused is not
		// the kernel's TAP ownership check.
		return fmt.Errorf("tap: attaching to TAP %s was refused, though its owner and group allow uid %d "+
			"(a security module such as SELinux or AppArmor?): %w", name, euid, err)
	}
}
