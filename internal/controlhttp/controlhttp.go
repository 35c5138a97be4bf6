// Package controlhttp serves an operator-facing HTTP handler (the relay
// control API, the metrics) on the host's network, hardened for a socket
// that anyone who can reach it may talk to:
//
//   - Loopback by default: a bare port ("8080" or ":8080") means
//     127.0.0.1; an address that is not loopback, the wildcard included,
//     is refused unless a bearer token is set (CheckAddr).
//   - With Options.Token, every request but GET /healthz must carry
//     "Authorization: Bearer TOKEN" (compared in constant time), or it
//     gets 401.
//   - Read, write and idle timeouts, a header size limit and a body size
//     limit, so a slow client holds nothing for long.
//   - A connection cap that never locks out a real client: when the cap is
//     reached, a new connection evicts the connection that has been idle
//     (or silent since it connected) the longest; connections with a
//     request in progress are never evicted. 20,000 idle connections
//     leave the server answering.
//   - GET /healthz answers "ok" (no token needed), for load balancers and
//     supervisors.
//
// Plug it in with Listen(Options{Addr, Handler, Token, Name, Log}) and
// Close it on shutdown.
package controlhttp

import (
	"container/list"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Options.
const (
	DefaultMaxConns          = 256
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 10 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxHeaderBytes    = 16 << 10
	DefaultMaxBodyBytes      = 1 << 20
)

// ErrNeedsToken is returned by CheckAddr for an address other hosts can
// reach when no token is set.
var ErrNeedsToken = errors.New("is reachable from other hosts; set a bearer token (--control-token) or listen on loopback (127.0.0.1:PORT)")

// CheckAddr returns addr with a bare port ("8080", ":8080") made
// 127.0.0.1:PORT, and refuses an address that other hosts can reach (not
// loopback: a unicast address, the wildcard 0.0.0.0 or ::, or a host
// name) unless hasToken.
func CheckAddr(addr string, hasToken bool) (string, error) {
	if _, err := strconv.ParseUint(addr, 10, 16); err == nil {
		addr = ":" + addr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return "", fmt.Errorf("want HOST:PORT or PORT (e.g. 127.0.0.1:8080)")
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", fmt.Errorf("port %q is not a number in [0, 65535]", port)
	}
	if host == "" {
		return net.JoinHostPort("127.0.0.1", port), nil
	}
	if host == "localhost" {
		return addr, nil
	}
	ip, err := netip.ParseAddr(host)
	if err == nil && ip.Unmap().IsLoopback() {
		return addr, nil
	}
	if !hasToken {
		return "", ErrNeedsToken
	}
	return addr, nil
}

// Options configure a Server.
type Options struct {
	// Addr is where to listen, as CheckAddr accepts it. Required.
	Addr string
	// Handler serves the requests. Required.
	Handler http.Handler
	// Token, when set, is the bearer token every request but /healthz
	// must carry. Required when Addr is not loopback.
	Token string
	// Name says what the server is in logs ("control API", "metrics").
	Name string
	// Log gets a line when the server starts, stops on an error, evicts a
	// connection, or refuses a token. Nil: slog.Default().
	Log *slog.Logger

	// Limits; zero means the Default* constant.
	MaxConns          int
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	MaxBodyBytes      int64
}

// Server is a running control server.
type Server struct {
	srv   *http.Server
	ln    *capListener
	log   *slog.Logger
	name  string
	done  chan struct{}
	token []byte

	unauthorized atomic.Uint64
}

// Listen validates opts, listens on Addr and serves until Close.
func Listen(opts Options) (*Server, error) {
	if opts.Handler == nil {
		return nil, errors.New("controlhttp: Options.Handler is nil")
	}
	addr, err := CheckAddr(opts.Addr, opts.Token != "")
	if err != nil {
		return nil, fmt.Errorf("controlhttp: %s: %w", opts.Addr, err)
	}
	if opts.Token != "" && strings.ContainsAny(opts.Token, " \t\r\n") {
		return nil, errors.New("controlhttp: the token must not contain white space")
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Name == "" {
		opts.Name = "control"
	}
	setDefault(&opts.MaxConns, DefaultMaxConns)
	setDefault(&opts.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	setDefault(&opts.ReadTimeout, DefaultReadTimeout)
	setDefault(&opts.WriteTimeout, DefaultWriteTimeout)
	setDefault(&opts.IdleTimeout, DefaultIdleTimeout)
	setDefault(&opts.MaxHeaderBytes, DefaultMaxHeaderBytes)
	setDefault(&opts.MaxBodyBytes, DefaultMaxBodyBytes)
	if opts.MaxConns < 2 {
		return nil, fmt.Errorf("controlhttp: MaxConns %d < 2", opts.MaxConns)
	}

	inner, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{
		log:   opts.Log,
		name:  opts.Name,
		done:  make(chan struct{}),
		token: []byte(opts.Token),
	}
	s.ln = newCapListener(inner, opts.MaxConns, func() {
		s.log.Warn(s.name+": connection cap reached, evicting the longest idle connection", "max_conns", opts.MaxConns)
	})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("/", s.authorize(http.MaxBytesHandler(opts.Handler, opts.MaxBodyBytes)))
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		ReadTimeout:       opts.ReadTimeout,
		WriteTimeout:      opts.WriteTimeout,
		IdleTimeout:       opts.IdleTimeout,
		MaxHeaderBytes:    opts.MaxHeaderBytes,
		ConnState:         s.ln.track,
		ErrorLog:          slog.NewLogLogger(opts.Log.Handler(), slog.LevelDebug),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error(s.name+" stopped", "err", err)
		}
	}()
	s.log.Info(s.name+" listening", "addr", inner.Addr().String(), "token", opts.Token != "", "max_conns", opts.MaxConns)
	return s, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// authorize checks the bearer token, when there is one.
func (s *Server) authorize(h http.Handler) http.Handler {
	if len(s.token) == 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), s.token) != 1 {
			if s.unauthorized.Add(1) == 1 {
				s.log.Warn(s.name+": request without the bearer token refused (logged once; see Unauthorized)", "remote", r.RemoteAddr)
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="mediastack"`)
			http.Error(w, "401 unauthorized: send Authorization: Bearer TOKEN", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Unauthorized returns how many requests were refused for a missing or
// wrong token.
func (s *Server) Unauthorized() uint64 { return s.unauthorized.Load() }

// Evicted returns how many connections the cap closed.
func (s *Server) Evicted() uint64 { return s.ln.evicted.Load() }

// Close stops accepting, lets requests in progress finish (up to 5 s) and
// closes every connection.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		_ = s.srv.Close()
	}
	<-s.done
}

// capListener caps the open connections of a server. It learns each
// connection's state from http.Server.ConnState: connections that are new
// (no request yet) or idle (between requests) are kept in the order they
// became so, and when Accept would exceed the cap the oldest of them is
// closed. Closing a connection in StateNew or StateIdle is what the
// server's own timeouts would do a little later.
type capListener struct {
	net.Listener
	max     int
	onEvict func()
	evicted atomic.Uint64

	mu       sync.Mutex
	open     int
	idle     *list.List                 // of net.Conn, oldest first
	idleElem map[net.Conn]*list.Element // conns in idle
	warned   bool
}

func newCapListener(l net.Listener, max int, onEvict func()) *capListener {
	return &capListener{Listener: l, max: max, onEvict: onEvict, idle: list.New(), idleElem: make(map[net.Conn]*list.Element)}
}

func (l *capListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	var victim net.Conn
	l.mu.Lock()
	l.open++
	if l.open > l.max {
		if e := l.idle.Front(); e != nil {
			victim = e.Value.(net.Conn)
			l.unidleLocked(victim)
		}
	}
	warn := victim != nil && !l.warned
	if warn {
		l.warned = true
	}
	l.mu.Unlock()
	if victim != nil {
		l.evicted.Add(1)
		_ = victim.Close() // the server sees the close and reports StateClosed
		if warn {
			l.onEvict()
		}
	}
	return c, nil
}

func (l *capListener) unidleLocked(c net.Conn) {
	if e, ok := l.idleElem[c]; ok {
		l.idle.Remove(e)
		delete(l.idleElem, c)
	}
}

// track is the server's ConnState hook.
func (l *capListener) track(c net.Conn, state http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch state {
	case http.StateNew, http.StateIdle:
		l.unidleLocked(c)
		l.idleElem[c] = l.idle.PushBack(c)
	case http.StateActive:
		l.unidleLocked(c)
	case http.StateHijacked, http.StateClosed:
		l.unidleLocked(c)
		l.open--
	}
}
