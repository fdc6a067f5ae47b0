//go:build !popdns_noembed

package fleet

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"
)

// The embedded server costs about 14 MB of binary (the NATS client about
// 3 MB): an operator with a NATS service of their own may build with
// -tags popdns_noembed (embedded_none.go).

// startEmbedded runs the NATS server cfg.Embedded describes, named after
// the instance (JetStream clusters need unique server names), and waits
// until it takes connections or ctx ends.
func startEmbedded(ctx context.Context, cfg Config, log zerolog.Logger) (embeddedServer, error) {
	e := cfg.Embedded
	host, port, _ := splitHostPort(e.Listen) // checked by Provision
	opts := &server.Options{
		ServerName: cfg.Instance,
		Host:       host,
		Port:       natsPort(port),
		JetStream:  true,
		StoreDir:   e.StoreDir,
		NoSigs:     true,
	}
	if e.ClusterListen != "" {
		ch, cp, _ := splitHostPort(e.ClusterListen)
		opts.Cluster = server.ClusterOpts{Name: e.ClusterName, Host: ch, Port: natsPort(cp)}
		for _, r := range e.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("fleet: embedded NATS route %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	// The server only logs a failure to listen and never becomes ready:
	// try the addresses first for an error that says why.
	for _, a := range []string{e.Listen, e.ClusterListen} {
		if a == "" {
			continue
		}
		l, err := net.Listen("tcp", a)
		if err != nil {
			return nil, fmt.Errorf("fleet: embedded NATS: %w", err)
		}
		l.Close()
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("fleet: embedded NATS: %w", err)
	}
	s.SetLoggerV2(natsLogger{log.With().Str("component", "nats-server").Logger()}, false, false, false)
	s.Start()
	deadline := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		deadline = time.Until(d)
	}
	if !s.ReadyForConnections(deadline) {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, fmt.Errorf("fleet: embedded NATS on %s: not ready within %v", e.Listen, deadline)
	}
	return s, nil
}

type embeddedServer = *server.Server

// natsPort maps port 0 (any free port, as net.Listen takes it) to the
// server's way of saying so; its 0 means 4222.
func natsPort(p int) int {
	if p == 0 {
		return server.RANDOM_PORT
	}
	return p
}

// natsLogger hands the embedded server's log to zerolog. Its notices
// (start-up banners, route changes) go at debug level: they are many and
// the fleet logs what matters to an operator itself.
type natsLogger struct{ log zerolog.Logger }

func (l natsLogger) Noticef(format string, v ...any) { l.log.Debug().Msgf(format, v...) }
func (l natsLogger) Warnf(format string, v ...any)   { l.log.Warn().Msgf(format, v...) }
func (l natsLogger) Fatalf(format string, v ...any)  { l.log.Error().Msgf(format, v...) }
func (l natsLogger) Errorf(format string, v ...any)  { l.log.Error().Msgf(format, v...) }
func (l natsLogger) Debugf(format string, v ...any)  { l.log.Debug().Msgf(format, v...) }
func (l natsLogger) Tracef(format string, v ...any)  { l.log.Trace().Msgf(format, v...) }
