// Package kamailiotest runs Kamailio (Debian's kamailio package) inside a
// test's network namespace as the SIP proxy of a call whose media a relay
// handles through rtpengine's ng protocol: INVITE with SDP →
// rtpengine_offer, its 200 OK → rtpengine_answer, BYE → rtpengine_delete.
//
// Start writes a minimal kamailio.cfg (docs/research/rtpengine-ng.md,
// section 6) into a temporary directory, checks it with kamailio -c, runs
// Kamailio in the foreground with its log on stderr, and waits until it
// listens. The proxy is stopped when the test ends; its log goes into the
// test's log if the test failed.
//
//	proxy := kamailiotest.Start(t, ns, kamailiotest.Options{SIP: []netip.AddrPort{sipAddr}, NG: ngAddr})
package kamailiotest

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/mediastack/mediastack/internal/netnstest"
)

// Options configure the proxy.
type Options struct {
	SIP []netip.AddrPort // where Kamailio listens for SIP (UDP)
	NG  netip.AddrPort   // the media relay's ng port (rtpengine_sock)
	// Flags are the rtpengine module's flags for offer and answer; empty
	// means "replace-origin replace-session-connection ICE=remove".
	Flags string
}

// Proxy is a running Kamailio.
type Proxy struct {
	p *netnstest.Process
}

// Log returns what Kamailio logged so far.
func (p *Proxy) Log() string { return p.p.Output() }

// The configuration: a stateful proxy with record-routing, no registrar;
// every SDP goes through the relay. Kept as the research note gives it.
var config = template.Must(template.New("kamailio.cfg").Parse(`#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=2
dns=no
rev_dns=no
{{range .SIP}}listen=udp:{{.}}
{{end}}mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"

loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "rtpengine.so"

modparam("rtpengine", "rtpengine_sock", "{{.Sock}}")

request_route {
	xlog("L_INFO", "request $rm $ru from $si:$sp\n");
	if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; }

	if (has_totag()) {
		if (loose_route()) {
			if (is_method("BYE")) {
				rtpengine_delete();
			} else if (is_method("INVITE") && has_body("application/sdp")) {
				rtpengine_offer("{{.Flags}}");
				t_on_reply("MANAGE_REPLY");
			} else if (is_method("ACK") && has_body("application/sdp")) {
				rtpengine_answer("{{.Flags}}");
			}
			route(RELAY);
		}
		if (is_method("ACK")) { if (t_check_trans()) { t_relay(); } exit; }
		sl_send_reply("404", "Not here");
		exit;
	}

	if (is_method("CANCEL")) {
		if (t_check_trans()) { rtpengine_delete(); t_relay(); }
		exit;
	}
	t_check_trans();

	if (is_method("INVITE")) {
		record_route();
		if (has_body("application/sdp")) {
			if (!rtpengine_offer("{{.Flags}}")) {
				sl_send_reply("503", "Media relay refused the offer");
				exit;
			}
		}
		t_on_reply("MANAGE_REPLY");
		t_on_failure("MANAGE_FAILURE");
	}
	route(RELAY);
}

route[RELAY] {
	if (!t_relay()) { sl_reply_error(); }
	exit;
}

onreply_route[MANAGE_REPLY] {
	xlog("L_INFO", "reply $rs $rr for $rm\n");
	if (status =~ "(183)|(2[0-9][0-9])" && has_body("application/sdp")) {
		rtpengine_answer("{{.Flags}}");
	}
}

failure_route[MANAGE_FAILURE] {
	rtpengine_delete();
}
`))

// rtpengineSock is how the rtpengine module names an ng address.
func rtpengineSock(ng netip.AddrPort) string {
	if ng.Addr().Is6() {
		return "udp6:" + ng.String()
	}
	return "udp:" + ng.String()
}

// Start writes the configuration, checks it and runs Kamailio in ns until
// the test ends. The relay's ng port must answer already: Kamailio pings it
// as it starts and leaves a silent one aside for a minute.
func Start(t testing.TB, ns *netnstest.Namespace, o Options) *Proxy {
	t.Helper()
	netnstest.RequireTools(t, "kamailio")
	if o.Flags == "" {
		o.Flags = "replace-origin replace-session-connection ICE=remove"
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "kamailio.cfg")
	var b strings.Builder
	if err := config.Execute(&b, map[string]any{"SIP": o.SIP, "Sock": rtpengineSock(o.NG), "Flags": o.Flags}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := ns.Exec("kamailio", "-c", "-f", cfg); err != nil {
		t.Fatalf("kamailio -c -f %s: %v\n%s\n%s", cfg, err, out, b.String())
	}
	run := filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o755); err != nil {
		t.Fatal(err)
	}
	// -DD: the main process stays in the foreground (its workers are its
	// children, in its process group); -E: log to stderr; -Y: a runtime
	// directory of our own instead of /run/kamailio.
	p := &Proxy{p: ns.Start("kamailio", "-f", cfg, "-DD", "-E", "-m", "64", "-M", "8",
		"-Y", run, "-P", filepath.Join(run, "kamailio.pid"))}
	t.Cleanup(func() {
		// A clean stop first, so the log ends with what Kamailio did on
		// shutdown; ns.Start's cleanup kills what is left.
		p.p.Signal(syscall.SIGTERM)
		p.p.Stop(10 * time.Second)
		if t.Failed() {
			t.Logf("Kamailio's log:\n%s", p.p.Output())
		}
	})
	for _, sip := range o.SIP {
		netnstest.WaitFor(t, netnstest.StateTimeout, "Kamailio listening on "+sip.String(), func() error {
			select {
			case <-p.p.Done():
				return fmt.Errorf("kamailio exited: %v: %s", p.p.Err(), p.p.Output())
			default:
			}
			// SIP that arrives before the workers are ready (they ping the
			// relay first) waits in the socket.
			return ns.Listening("udp", sip.Port())
		})
	}
	return p
}
