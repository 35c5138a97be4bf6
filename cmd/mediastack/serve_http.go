package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/mediastack/mediastack/mediahost"
	"github.com/mediastack/mediastack/stack"
	"github.com/mediastack/mediastack/tcpoffload"
)

// tcpOffloadFlagUsage documents --tcp-offload.
const tcpOffloadFlagUsage = "how TCP sends large packets, `auto|off|soft|vnet`: vnet (a TAP takes each once with a virtio-net header; the kernel segments it, " +
	"or delivers it whole to a local socket), soft (cut into MSS-sized frames from a header template, written in a batch), " +
	"off (netstack builds every segment), or auto: vnet on tap, soft on raw"

// tcpOffload returns the TCP offload --tcp-offload asks of a link of kind:
// nil for auto (the host's choice for the kind: vnet on tap, soft on raw).
func (cfg *serveConfig) tcpOffload(kind mediahost.LinkKind) (*tcpoffload.Mode, error) {
	if cfg.tcpOffloadMode == "" || cfg.tcpOffloadMode == "auto" {
		return nil, nil
	}
	mode, err := tcpoffload.ParseMode(cfg.tcpOffloadMode)
	if err != nil {
		return nil, usageErrorf("--tcp-offload %q: want off, soft, vnet or auto", cfg.tcpOffloadMode)
	}
	if mode == tcpoffload.Vnet && kind != mediahost.TAP {
		return nil, usageErrorf("--tcp-offload vnet needs a tap link (virtio-net headers); use soft on %s", kind)
	}
	return &mode, nil
}

// validateHTTP checks --http-port.
func (cfg *serveConfig) validateHTTP() error {
	if cfg.httpRoot != "" && (cfg.httpPort == 0 || cfg.httpPort > 65535) {
		return usageErrorf("--http-port %d out of range [1, 65535]", cfg.httpPort)
	}
	return nil
}

// startHTTP serves --http-root over HTTP on --http-port of every address
// of the stack, with Go's net/http on listeners of the user-space stack:
// files by path, directory listings, Range requests (http.ServeContent),
// so that a kernel curl or ffmpeg can download or play media from the
// stack. It returns what closes the servers; wg counts their goroutines.
func startHTTP(st *stack.Stack, cfg serveConfig, log *slog.Logger, wg *sync.WaitGroup) ([]io.Closer, error) {
	if cfg.httpRoot == "" {
		return nil, nil
	}
	fi, err := os.Stat(cfg.httpRoot)
	if err != nil {
		return nil, fmt.Errorf("--http-root: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("--http-root %s is not a directory", cfg.httpRoot)
	}
	handler := http.FileServer(http.Dir(cfg.httpRoot))
	var closers []io.Closer
	for _, cidr := range cfg.addrs {
		ap := netip.AddrPortFrom(netip.MustParsePrefix(cidr).Addr(), uint16(cfg.httpPort))
		l, err := st.Listen(ap)
		if err != nil {
			for _, c := range closers {
				c.Close()
			}
			return nil, fmt.Errorf("http: listening on %s: %w", ap, err)
		}
		srv := &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		closers = append(closers, srv)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Warn("http service stopped", "addr", ap.String(), "err", err)
			}
		}()
		log.Info("http service", "addr", ap.String(), "root", cfg.httpRoot)
	}
	return closers, nil
}
