package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/internal/h1srv"
)

// Run listens on the config's `listen` and `admin.listen` and serves until ctx ends, then shuts down gracefully
// (see Serve).
func (g *Gateway) Run(ctx context.Context) error {
	cfg := g.Config()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	aln, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		ln.Close()
		return fmt.Errorf("admin.listen %s: %w", cfg.Admin.Listen, err)
	}
	return g.Serve(ctx, ln, aln)
}

// Serve serves clients on ln (HTTPS when the config has `tls`, HTTP/2 for clients that offer it, h2c without TLS)
// and the admin handler on adminLn (nil: no admin listener) until ctx ends. Then it drains: /readyz answers 503 at
// once and the listeners keep accepting and serving for server.shutdown_delay, so that load balancers take this
// replica out first (HTTP/1 answers carry `Connection: close` meanwhile). Then it stops accepting, lets requests and
// streams in flight finish for at most server.shutdown_timeout, ends those still running (streams get an error
// event), closes the engine and returns nil. It returns early with an error if a listener fails.
func (g *Gateway) Serve(ctx context.Context, ln, adminLn net.Listener) error {
	cfg := g.Config()
	srv := g.server(g.front(g.Handler()))
	if cfg.TLS != nil {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			ln.Close()
			if adminLn != nil {
				adminLn.Close()
			}
			return fmt.Errorf("tls: %w", err)
		}
		g.cert.Store(&cert)
		srv.TLSConfig = &tls.Config{
			MinVersion: tls.VersionTLS12,
			NextProtos: []string{"h2", "http/1.1"},
			// The certificate is read per handshake, so a reload (SIGHUP) rotates it without a restart.
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return g.cert.Load(), nil },
		}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	servers := []server{srv}
	errc := make(chan error, 3)
	if cfg.TLS == nil && cfg.Server.HTTP1 != config.HTTP1NetHTTP {
		// Lifeline's HTTP/1.x server takes the listener; a connection that opens with the HTTP/2 preface
		// (h2c with prior knowledge) is handed to net/http's server through a listener of its own.
		h2 := h1srv.NewHandOffListener(ln.Addr())
		fast := &h1srv.Server{
			Handler:           srv.Handler,
			ReadHeaderTimeout: srv.ReadHeaderTimeout,
			IdleTimeout:       srv.IdleTimeout,
			MaxHeaderBytes:    srv.MaxHeaderBytes,
			BaseContext:       func() context.Context { return g.hardCtx },
			Fallback:          h2.Deliver,
			ErrorLog:          g.log,
		}
		servers = []server{fast, srv}
		go func() { errc <- fast.Serve(ln) }()
		go func() { errc <- srv.Serve(h2) }()
	} else {
		go func() { errc <- srv.Serve(ln) }()
	}
	if adminLn != nil {
		asrv := g.server(g.AdminHandler())
		asrv.Protocols = nil
		servers = append(servers, server(asrv))
		go func() { errc <- asrv.Serve(adminLn) }()
		g.log.Info("admin listening", "addr", adminLn.Addr().String())
	}
	g.log.Info("gateway listening", "addr", ln.Addr().String(), "tls", cfg.TLS != nil,
		"regions", len(cfg.Regions), "names", len(cfg.Names()))
	g.notify("READY=1\nSTATUS=serving on " + ln.Addr().String())
	var err error
	select {
	case <-ctx.Done():
		err = g.drain(cfg.Server.ShutdownDelay.D(), errc)
	case err = <-errc:
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	g.shutdown(servers, cfg.Server.ShutdownTimeout.D())
	return err
}

// Drain starts draining: /readyz answers 503 and HTTP/1 answers carry `Connection: close`, while everything else
// goes on serving. Serve calls it when its context ends; call it earlier to take the gateway out of a load
// balancer's rotation before stopping it. There is no undoing it.
func (g *Gateway) Drain() {
	if g.draining.Swap(true) {
		return
	}
	g.notify("STOPPING=1\nSTATUS=draining")
	g.log.Info("draining: /readyz answers 503; still serving until server.shutdown_delay has passed")
}

// Draining reports whether Drain was called (the gateway is stopping).
func (g *Gateway) Draining() bool { return g.draining.Load() }

// drain calls Drain and keeps serving for delay, or until a listener fails (its error is returned).
func (g *Gateway) drain(delay time.Duration, errc <-chan error) error {
	g.Drain()
	if delay <= 0 {
		return nil
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case err := <-errc:
		return err
	}
}

// front is what Serve puts before the client handler. While the gateway drains it asks HTTP/1 clients (and load
// balancers' connection pools) to close their connection after each answer, so that no idle kept-alive
// connection is left to race with the shutdown. With state.redis it names the replica in x-lifeline-replica.
func (g *Gateway) front(h http.Handler) http.Handler {
	replica := ""
	if g.shared != nil {
		replica = g.shared.Replica()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if replica != "" {
			w.Header().Set(HeaderReplica, replica)
		}
		if g.draining.Load() && r.ProtoMajor == 1 && r.Header.Get("Upgrade") == "" {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}

// HeaderReplica names the replica that answered, on every answer of a gateway with state.redis.
const HeaderReplica = "X-Lifeline-Replica"

func (g *Gateway) notify(state string) {
	if g.opts.Notify != nil {
		g.opts.Notify(state)
	}
}

func (g *Gateway) server(h http.Handler) *http.Server {
	s := g.Config().Server
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.ReadHeaderTimeout.D(),
		IdleTimeout:       s.IdleTimeout.D(),
		MaxHeaderBytes:    s.MaxHeaderBytes,
		Protocols:         p,
		BaseContext:       func(net.Listener) context.Context { return g.hardCtx },
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
}

// shutdown stops accepting, waits up to grace for requests in flight, then cancels the rest (their streams end
// with an error event) and closes what is left.
// server is an *http.Server or an *h1srv.Server.
type server interface {
	Shutdown(context.Context) error
	Close() error
}

func (g *Gateway) shutdown(servers []server, grace time.Duration) {
	if grace <= 0 {
		grace = 30 * time.Second
	}
	g.log.Info("shutting down; requests in flight may finish", "grace", grace.String())
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	graceful := true
	for _, s := range servers {
		if err := s.Shutdown(ctx); err != nil {
			graceful = false
		}
	}
	if !graceful {
		// Out of time: end every request context (streams write their error event), and give the handlers a
		// moment to do so before the connections close.
		g.hardStop()
		for deadline := time.Now().Add(2 * time.Second); g.active.Load() > 0 && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
	}
	for _, s := range servers {
		s.Close()
	}
	g.hardStop()
	g.transport.Close()
	if g.shared != nil {
		g.shared.Close()
	}
	g.trace.shutdown()
	g.log.Info("stopped")
}
