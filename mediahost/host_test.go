package mediahost_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mediastack/mediastack/internal/leakcheck"
	"github.com/mediastack/mediastack/mediahost"
	"github.com/mediastack/mediastack/tcpoffload"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func TestParseLink(t *testing.T) {
	for _, tc := range []struct {
		spec    string
		want    mediahost.Link
		wantErr string
	}{
		{spec: "tap:media0", want: mediahost.Link{Kind: mediahost.TAP, Name: "media0"}},
		{spec: "raw:eth1", want: mediahost.Link{Kind: mediahost.Raw, Name: "eth1"}},
		{spec: "tap:", wantErr: `mediahost.ParseLink("tap:"): want tap:NAME or raw:IFACE`},
		{spec: "eth1", wantErr: `mediahost.ParseLink("eth1"): want tap:NAME or raw:IFACE`},
		{spec: "eth:x", wantErr: `mediahost.ParseLink("eth:x"): unknown link kind "eth" (want tap:NAME or raw:IFACE)`},
	} {
		got, err := mediahost.ParseLink(tc.spec)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("ParseLink(%q): %v, %v; want error %q", tc.spec, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseLink(%q): %v, %v; want %v", tc.spec, got, err, tc.want)
		}
		if got.String() != tc.spec {
			t.Errorf("Link %v prints as %q, want %q", got, got.String(), tc.spec)
		}
	}
}

// Unless told otherwise, a TAP sends large TCP packets for the kernel to
// segment (it takes virtio-net headers) and a raw link cuts them itself.
func TestDefaultTCPOffload(t *testing.T) {
	got := map[string]tcpoffload.Mode{"tap": mediahost.TAP.TCPOffload(), "raw": mediahost.Raw.TCPOffload()}
	want := map[string]tcpoffload.Mode{"tap": tcpoffload.Vnet, "raw": tcpoffload.Soft}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("default TCP offload by link kind (-want +got):\n%s", diff)
	}
}

// New refuses options that name no link or no address before it opens
// anything.
func TestNewRejectsBadOptions(t *testing.T) {
	addrs := []netip.Prefix{netip.MustParsePrefix("198.51.100.2/24")}
	for _, tc := range []struct {
		name string
		opts mediahost.Options
		want string
	}{
		{"no link", mediahost.Options{Addrs: addrs}, "want a TAP or Raw link"},
		{"no address", mediahost.Options{Link: mediahost.Link{Kind: mediahost.TAP, Name: "media0"}}, "Options.Addrs is empty"},
		{"invalid address", mediahost.Options{Link: mediahost.Link{Kind: mediahost.TAP, Name: "media0"}, Addrs: []netip.Prefix{{}}}, "invalid prefix"},
	} {
		h, err := mediahost.New(tc.opts)
		if err == nil {
			h.Close()
			t.Errorf("%s: no error", tc.name)
		} else if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want an error containing %q", tc.name, err, tc.want)
		}
	}
}
