package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/mediastack/mediastack/p2sp/origin"
)

type originConfig struct {
	node    nodeConfig
	dir     string
	web     string
	info    string
	webURL  string
	infoURL string
	noP2P   repeated
}

func runP2SPOrigin(args []string, stdout, stderr io.Writer) error {
	var cfg originConfig
	fs := newFlagSet("p2sp origin", p2spOriginHelp, stdout)
	fs.StringVar(&cfg.dir, "dir", "", "publish every regular file in this `DIR` (its id: the SHA-256 of its bytes)")
	fs.StringVar(&cfg.web, "web", "", "the web server's listener (210: files with Range, the web seed, /p2p/, /reports), `IP:PORT`")
	fs.StringVar(&cfg.info, "info", "", "the file-info server's listener (220: records, metainfo, the tracker's /announce), `IP:PORT`, an address of its own (claim 4)")
	fs.StringVar(&cfg.webURL, "web-url", "", "the web server's `URL` as clients reach it, in the metainfo's web seed (default: http://--web)")
	fs.StringVar(&cfg.infoURL, "info-url", "", "the file-info server's `URL` as clients reach it, in the metainfo's announce (default: http://--info)")
	fs.Var(&cfg.noP2P, "http-only", "publish files whose name matches this `GLOB` without P2P info: clients fetch them over HTTP alone")
	cfg.node.registerFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case cfg.dir == "":
		return usageErrorf("--dir DIR is required (the folder to publish)")
	case cfg.web == "" || cfg.info == "":
		return usageErrorf("--web IP:PORT and --info IP:PORT are required (two listeners)")
	}
	web, err := parseAddrPort("web", cfg.web)
	if err != nil {
		return err
	}
	info, err := parseAddrPort("info", cfg.info)
	if err != nil {
		return err
	}
	if web == info {
		return usageErrorf("--web and --info are both %s: the file-info server listens on its own address", web)
	}
	for _, g := range cfg.noP2P {
		if _, err := filepath.Match(g, ""); err != nil {
			return usageErrorf("--http-only %q: %v", g, err)
		}
	}
	if cfg.webURL == "" {
		cfg.webURL = "http://" + web.String()
	}
	if cfg.infoURL == "" {
		cfg.infoURL = "http://" + info.String()
	}
	log, err := cfg.node.logging.logger(stderr)
	if err != nil {
		return err
	}
	n, err := cfg.node.open(log, web.Addr(), info.Addr())
	if err != nil {
		return err
	}
	defer n.close()
	o, err := origin.New(origin.Options{Dir: cfg.dir, WebURL: cfg.webURL, InfoURL: cfg.infoURL, NoP2P: cfg.httpOnly, Logger: log})
	if err != nil {
		return err
	}
	wl, err := n.net.Listen(web)
	if err != nil {
		return fmt.Errorf("web server: %w", err)
	}
	il, err := n.net.Listen(info)
	if err != nil {
		wl.Close()
		return fmt.Errorf("file-info server: %w", err)
	}
	ctx, stop := signalContext()
	defer stop()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case err := <-n.linkFailed:
			cancel(err)
		case <-ctx.Done():
		}
	}()
	log.Info("p2sp origin up", "web", web.String(), "info", info.String(), "dir", cfg.dir)
	if err := o.Serve(ctx, wl, il); err != nil {
		return err
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	log.Info("shutting down", "reason", "signal")
	return nil
}

// httpOnly reports whether a file is published without P2P info.
func (cfg *originConfig) httpOnly(name string) bool {
	for _, g := range cfg.noP2P {
		if ok, _ := filepath.Match(g, name); ok {
			return true
		}
	}
	return false
}
