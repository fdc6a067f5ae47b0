package fleet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/popdns/popdns/internal/overrides"
)

// Bucket names. Every instance of a fleet uses the same.
const (
	OverridesBucket    = "popdns_overrides"
	ObservationsBucket = "popdns_observations"
)

// bindRetry is the pause between attempts to create or bind the buckets
// (NATS away, a cluster without a JetStream leader yet).
const bindRetry = time.Second

// Fleet is this instance's membership of a fleet: the NATS connection,
// the buckets, and the embedded server if any. It is safe for concurrent
// use. Close releases everything.
type Fleet struct {
	cfg Config
	log zerolog.Logger
	reg prometheus.Registerer
	m   metrics

	srv embeddedServer // nil without an embedded server
	nc  *nats.Conn
	js  jetstream.JetStream

	stop context.CancelFunc // ends bind
	done chan struct{}      // closed by Close: watchers return
	wg   sync.WaitGroup

	// ready is closed once the buckets below are bound; they are not
	// written afterwards.
	ready        chan struct{}
	ovKV, obsKV  jetstream.KeyValue
	obsPerMsgTTL bool // observations carry their own TTL (nats-server ≥ 2.11)

	// mu guards reconnected and lastErr.
	mu sync.Mutex
	// lastErr is the last asynchronous error logged: a wrong password
	// fails every reconnection attempt, and is logged once.
	lastErr string
	// reconnected is closed, and replaced, on every reconnection: the
	// watchers then read their bucket again.
	reconnected chan struct{}

	closeOnce sync.Once
}

// Open joins the fleet cfg describes: it starts the embedded server if
// any, and connects to NATS. It does not wait for NATS: the connection
// and the buckets come up in the background, retried forever, and Ready
// says when they are there; until then writes fail with
// overrides.ErrUnavailable and watchers wait. ctx bounds only the start
// of the embedded server. The metrics go to reg (which Close unregisters
// them from). cfg goes through Provision.
func Open(ctx context.Context, cfg Config, log zerolog.Logger, reg prometheus.Registerer) (*Fleet, error) {
	cfg, err := cfg.Provision()
	if err != nil {
		return nil, err
	}
	f := &Fleet{
		cfg:         cfg,
		log:         log.With().Str("component", "fleet").Logger(),
		reg:         reg,
		done:        make(chan struct{}),
		ready:       make(chan struct{}),
		reconnected: make(chan struct{}),
	}
	urls := cfg.NATS
	if cfg.Embedded != nil {
		if f.srv, err = startEmbedded(ctx, cfg, log); err != nil {
			return nil, err
		}
		// The local server first: it is the nearest and shares fate
		// with this instance.
		urls = append([]string{f.srv.ClientURL()}, urls...)
	}
	f.m = newMetrics(f)
	if err := f.m.register(reg); err != nil {
		f.shutdownServer()
		return nil, fmt.Errorf("fleet: metrics: %w", err)
	}
	opts := []nats.Option{
		nats.Name("popdns " + cfg.Instance),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(cfg.ReconnectWait),
		nats.Timeout(cfg.Timeout),
		// No buffering while disconnected: a write must fail now, not
		// go out minutes later behind the operator's back.
		nats.ReconnectBufSize(-1),
		nats.PingInterval(5 * time.Second),
		nats.MaxPingsOutstanding(2),
		nats.ConnectHandler(func(nc *nats.Conn) {
			f.log.Info().Str("url", nc.ConnectedUrlRedacted()).Msg("fleet: connected to NATS")
			f.signalReconnect()
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if f.closing() {
				return
			}
			f.log.Warn().Err(err).Msg("fleet: disconnected from NATS; keeping the last state, writes fail until it is back")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			f.asyncError(err)
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			f.asyncError(err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			f.mu.Lock()
			f.lastErr = ""
			f.mu.Unlock()
			f.m.reconnects.Inc()
			f.log.Info().Str("url", nc.ConnectedUrlRedacted()).Msg("fleet: reconnected to NATS; resyncing")
			f.signalReconnect()
		}),
	}
	if f.srv != nil {
		opts = append(opts, nats.DontRandomize()) // the local server first
	}
	if cfg.User != "" {
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}
	if cfg.Creds != "" {
		opts = append(opts, nats.UserCredentials(cfg.Creds))
	}
	if cfg.CAFile != "" {
		opts = append(opts, nats.RootCAs(cfg.CAFile))
	}
	f.nc, err = nats.Connect(strings.Join(urls, ","), opts...)
	if err != nil {
		f.m.unregister(reg)
		f.shutdownServer()
		return nil, fmt.Errorf("fleet: NATS %s: %w", strings.Join(urls, ","), err)
	}
	f.js, err = jetstream.New(f.nc, jetstream.WithDefaultTimeout(cfg.Timeout))
	if err != nil {
		f.nc.Close()
		f.m.unregister(reg)
		f.shutdownServer()
		return nil, fmt.Errorf("fleet: JetStream: %w", err)
	}
	bctx, stop := context.WithCancel(context.Background())
	f.stop = stop
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.bind(bctx)
	}()
	return f, nil
}

// Config is the provisioned configuration the fleet runs with.
func (f *Fleet) Config() Config { return f.cfg }

// Ready is closed once the buckets are created or bound.
func (f *Fleet) Ready() <-chan struct{} { return f.ready }

// Connected reports whether the connection to NATS is up now.
func (f *Fleet) Connected() bool { return f.nc.IsConnected() }

// Close leaves the fleet: watchers return, the connection closes, the
// embedded server shuts down. It waits for the goroutines it started.
func (f *Fleet) Close() error {
	f.closeOnce.Do(func() {
		close(f.done)
		f.stop()
		f.wg.Wait()
		f.nc.Close()
		f.shutdownServer()
		f.m.unregister(f.reg)
	})
	return nil
}

func (f *Fleet) closing() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

func (f *Fleet) shutdownServer() {
	if f.srv != nil {
		f.srv.Shutdown()
		f.srv.WaitForShutdown()
	}
}

func (f *Fleet) signalReconnect() {
	f.mu.Lock()
	close(f.reconnected)
	f.reconnected = make(chan struct{})
	f.mu.Unlock()
}

func (f *Fleet) asyncError(err error) {
	if err == nil || f.closing() {
		return
	}
	f.mu.Lock()
	repeat := err.Error() == f.lastErr
	f.lastErr = err.Error()
	f.mu.Unlock()
	if !repeat {
		f.log.Warn().Err(err).Msg("fleet: NATS error")
	}
}

func (f *Fleet) reconnectedChan() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reconnected
}

// bind creates or binds the buckets, retrying until it works or ctx
// ends.
func (f *Fleet) bind(ctx context.Context) {
	for attempt := 0; ; attempt++ {
		err := f.bindOnce(ctx)
		if err == nil {
			close(f.ready)
			f.log.Info().Int("replicas", f.replicas()).Bool("observation_msg_ttl", f.obsPerMsgTTL).Msg("fleet: buckets ready")
			return
		}
		ev := f.log.Debug()
		if attempt == 3 {
			ev = f.log.Warn() // persistent, not a start-up blip
		}
		ev.Err(err).Int("attempt", attempt+1).Msg("fleet: cannot create the buckets yet; retrying")
		select {
		case <-ctx.Done():
			return
		case <-time.After(bindRetry):
		}
	}
}

func (f *Fleet) bindOnce(ctx context.Context) error {
	// A request made before the cluster has a JetStream leader goes
	// unanswered: better to ask again soon than to wait long.
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	r := f.replicas()
	ov, err := f.ensureBucket(ctx, jetstream.KeyValueConfig{
		Bucket:      OverridesBucket,
		Description: "popdns operators' overrides per PoP; history is the audit trail",
		History:     uint8(f.cfg.History),
		Replicas:    r,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("bucket %s (replicas %d): %w", OverridesBucket, r, err)
	}
	obsCfg := jetstream.KeyValueConfig{
		Bucket:         ObservationsBucket,
		Description:    "popdns health observations per probe and instance; each expires by itself",
		History:        1,
		Replicas:       r,
		Storage:        jetstream.FileStorage,
		LimitMarkerTTL: f.cfg.ObservationTTL,
	}
	perMsg := true
	obs, err := f.ensureBucket(ctx, obsCfg)
	if errors.Is(err, jetstream.ErrLimitMarkerTTLNotSupported) {
		// An older server: the bucket's age limit expires them, and
		// watchers drop them by their age.
		obsCfg.LimitMarkerTTL, obsCfg.TTL, perMsg = 0, f.cfg.ObservationTTL, false
		obs, err = f.ensureBucket(ctx, obsCfg)
	}
	if err != nil {
		return fmt.Errorf("bucket %s (replicas %d): %w", ObservationsBucket, r, err)
	}
	f.ovKV, f.obsKV, f.obsPerMsgTTL = ov, obs, perMsg
	return nil
}

// ensureBucket binds the bucket cfg names if it is there as cfg says,
// and creates or updates it otherwise: the instances of a fleet start
// together, and all but the first find it made.
func (f *Fleet) ensureBucket(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	if kv, err := f.js.KeyValue(ctx, cfg.Bucket); err == nil {
		if st, err := kv.Status(ctx); err == nil {
			if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok {
				sc := bs.StreamInfo().Config
				if bs.History() == int64(cfg.History) && sc.Replicas == cfg.Replicas && sc.MaxAge == cfg.TTL &&
					sc.SubjectDeleteMarkerTTL == cfg.LimitMarkerTTL && sc.Storage == cfg.Storage {
					return kv, nil
				}
			}
		}
	}
	return f.js.CreateOrUpdateKeyValue(ctx, cfg)
}

// replicas is the buckets' replication: the configured figure, or 1 for
// a lone server and up to 3 for a cluster.
func (f *Fleet) replicas() int {
	if f.cfg.Replicas > 0 {
		return f.cfg.Replicas
	}
	if e := f.cfg.Embedded; e != nil {
		return min(3, 1+len(e.Routes))
	}
	if f.nc.ConnectedClusterName() != "" {
		return 3
	}
	return 1
}

// bound returns the buckets if they are bound and NATS is connected:
// a write fails at once otherwise.
func (f *Fleet) bound() (ov, obs jetstream.KeyValue, err error) {
	select {
	case <-f.ready:
	default:
		return nil, nil, fmt.Errorf("%w: the buckets are not bound yet (NATS unreachable or without JetStream)", overrides.ErrUnavailable)
	}
	if !f.nc.IsConnected() {
		return nil, nil, fmt.Errorf("%w: disconnected from NATS", overrides.ErrUnavailable)
	}
	return f.ovKV, f.obsKV, nil
}

// waitReady waits for the buckets, or for ctx or Close.
func (f *Fleet) waitReady(ctx context.Context) error {
	select {
	case <-f.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-f.done:
		return errClosed
	}
}

var errClosed = errors.New("fleet: closed")
