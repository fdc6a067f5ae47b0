package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/popdns/popdns/internal/overrides"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/steer"
	"github.com/popdns/popdns/zones"
	"github.com/rs/zerolog"
)

// AdminConfig is what the admin API writes to and how.
type AdminConfig struct {
	// Token is the bearer token every request must carry. Required.
	Token string
	// Store keeps the overrides the API writes. Required.
	Store overrides.Store
	// Sync applies the store's overrides in force to the DNS server, as
	// the store's watcher does; the API calls it after each write so that
	// its reply, and the next query, already see the change. nil leaves
	// it to the watcher.
	Sync func(context.Context) error
	// MinActive is the fewest eligible PoPs a change may leave any geo
	// record with (unless it had fewer already); 0 turns the rule off.
	MinActive int
	// Now is the clock of expiries and the safety rule; nil means
	// time.Now.
	Now func() time.Time
	Log zerolog.Logger
}

// Admin is the admin API: operators drain a PoP or take it down without
// editing files, through the overrides store, with who, why and an
// optional expiry. It is off unless the configuration names a token file,
// and every request must carry that token. The configuration's states
// apply beside the overrides, the stronger one winning. A change that
// would leave a geo record with fewer than MinActive eligible PoPs is
// refused unless forced. Reporter.Handler serves it; it is safe for
// concurrent use.
type Admin struct {
	rep *Reporter
	cfg AdminConfig
	log zerolog.Logger
	mu  sync.Mutex // serializes this instance's read-check-write of the overrides
}

// NewAdmin returns the admin API, which answers with the PoPs' status from
// rep. It panics without cfg.Store or cfg.Token.
func NewAdmin(rep *Reporter, cfg AdminConfig) *Admin {
	if cfg.Store == nil || cfg.Token == "" {
		panic("status: NewAdmin needs a Store and a Token")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Admin{rep: rep, cfg: cfg, log: cfg.Log.With().Str("component", "admin").Logger()}
}

// maxAdminBody bounds an admin request's body, which is one short JSON
// object.
const maxAdminBody = 4096

// WhoHeader names the author of a change when the body does not.
const WhoHeader = "X-Popdns-Who"

// defaultWho is the author of a change that names none.
const defaultWho = "admin-api"

// change is the body of a write: POST /v1/overrides/{pop} (all of it),
// POST /v1/pops/{name}/state (not Revision) and DELETE
// /v1/overrides/{pop} (Who, Why, Revision, Force).
type change struct {
	State string `json:"state"`
	Who   string `json:"who"`
	Why   string `json:"why"`
	// Expires is an RFC 3339 time or a duration from now such as 2h.
	Expires string `json:"expires"`
	// Revision, when given, is the revision the write replaces (0: none);
	// without it the write replaces whatever is there.
	Revision *uint64 `json:"revision"`
	// Force writes a change the safety rule refuses.
	Force bool `json:"force"`
}

// httpError is a refusal with its HTTP status.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func errorf(code int, format string, args ...any) *httpError {
	return &httpError{code, fmt.Sprintf(format, args...)}
}

func writeError(w http.ResponseWriter, err error) {
	var he *httpError
	if errors.As(err, &he) {
		http.Error(w, he.msg, he.code)
		return
	}
	if errors.Is(err, overrides.ErrConflict) {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	if errors.Is(err, overrides.ErrUnavailable) {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	http.Error(w, err.Error(), http.StatusInternalServerError)
}

// decodeChange reads a write's body; an empty one is the zero change when
// empty is true.
func decodeChange(w http.ResponseWriter, r *http.Request, allowRevision, empty bool) (change, error) {
	var c change
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		if tooBig := (*http.MaxBytesError)(nil); errors.As(err, &tooBig) {
			return c, errorf(http.StatusRequestEntityTooLarge, "body larger than %d bytes; it is JSON such as {\"state\": \"drain\"}", tooBig.Limit)
		}
		if !empty || !errors.Is(err, io.EOF) {
			return c, errorf(http.StatusBadRequest, `body must be JSON such as {"state": "drain", "why": "maintenance", "expires": "2h"}: %v`, err)
		}
	}
	if c.Revision != nil && !allowRevision {
		return c, errorf(http.StatusBadRequest, "revision: not taken here; use POST /v1/overrides/{pop}")
	}
	if c.Who == "" {
		c.Who = r.Header.Get(WhoHeader)
	}
	if c.Who == "" {
		c.Who = defaultWho
	}
	return c, nil
}

// parseState takes the states' exact names, not the files' looser forms
// (any case, or nothing for active).
func parseState(s string) (pops.AdminState, error) {
	state, ok := pops.ParseAdminState(s)
	if !ok || s != state.String() {
		return 0, errorf(http.StatusBadRequest, "state %q is not one of active, drain, down", s)
	}
	return state, nil
}

// parseExpires reads an expiry: an RFC 3339 time or a duration from now;
// "" is none. It must be in the future.
func parseExpires(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		d, derr := time.ParseDuration(s)
		if derr != nil {
			return time.Time{}, errorf(http.StatusBadRequest, "expires %q: neither an RFC 3339 time (2026-12-01T18:00:00Z) nor a duration (2h)", s)
		}
		t = now.Add(d)
	}
	if !t.After(now) {
		return time.Time{}, errorf(http.StatusBadRequest, "expires %q: not in the future", s)
	}
	return t, nil
}

// setPoPState serves POST /v1/pops/{name}/state with a body such as
// {"state": "drain"}: active, drain or down, and optionally who, why,
// expires and force. Active removes the PoP's override. It answers the
// PoP's status.
func (a *Admin) setPoPState(w http.ResponseWriter, r *http.Request) {
	// The guard in front (Reporter.Handler) has checked the admin token.
	name := r.PathValue("name")
	c, err := decodeChange(w, r, false, false)
	if err == nil {
		name, err = subject(a.rep.srv.Zones(), name)
	}
	if err == nil {
		_, err = a.write(r, name, c, c.State == pops.Active.String())
	}
	if err != nil {
		writeError(w, err)
		return
	}
	for _, p := range a.rep.Status().PoPs {
		if p.Name == name {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(p)
			return
		}
	}
}

// putOverride serves POST /v1/overrides/{pop}; it answers the event
// written.
func (a *Admin) putOverride(w http.ResponseWriter, r *http.Request) {
	c, err := decodeChange(w, r, true, false)
	var ev overrides.Event
	if err == nil {
		ev, err = a.write(r, r.PathValue("pop"), c, false)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ev)
}

// deleteOverride serves DELETE /v1/overrides/{pop}, with an optional body
// of who, why, revision and force; it answers the event written.
func (a *Admin) deleteOverride(w http.ResponseWriter, r *http.Request) {
	c, err := decodeChange(w, r, true, true)
	var ev overrides.Event
	if err == nil {
		if c.State != "" || c.Expires != "" {
			err = errorf(http.StatusBadRequest, "a delete takes who, why, revision and force only")
		} else {
			ev, err = a.write(r, r.PathValue("pop"), c, true)
		}
	}
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ev)
}

// write applies c to pop's override, or deletes it when del is true,
// after the safety rule, and syncs the server.
func (a *Admin) write(r *http.Request, pop string, c change, del bool) (overrides.Event, error) {
	ctx := r.Context()
	now := a.cfg.Now()
	var o overrides.Override
	if !del {
		state, err := parseState(c.State)
		if err != nil {
			return overrides.Event{}, err
		}
		expires, err := parseExpires(c.Expires, now)
		if err != nil {
			return overrides.Event{}, err
		}
		o = overrides.Override{PoP: pop, State: state, StateName: state.String(), Who: c.Who, Why: c.Why,
			Set: now, Expires: expires}
	}
	// A delete needs no PoP in the configuration: an override of a PoP
	// since removed must be removable too.
	if !del {
		var err error
		if pop, err = subject(a.rep.srv.Zones(), pop); err != nil {
			return overrides.Event{}, err
		}
		o.PoP = pop
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	list, err := a.cfg.Store.List(ctx)
	if err != nil {
		return overrides.Event{}, err
	}
	var cur *overrides.Override
	next := make([]overrides.Override, 0, len(list)+1)
	for i := range list {
		if list[i].PoP == pop {
			cur = &list[i]
			continue
		}
		next = append(next, list[i])
	}
	if !del {
		next = append(next, o)
	}
	if del && cur == nil {
		if c.Revision == nil && c.State == pops.Active.String() {
			// Setting active where nothing is set: nothing to do.
			return overrides.Event{Op: "delete", At: now, Override: overrides.Override{PoP: pop, StateName: c.State, Who: c.Who}}, nil
		}
		return overrides.Event{}, errorf(http.StatusNotFound, "no override of %s", pop)
	}
	rev := uint64(0)
	if cur != nil {
		rev = cur.Revision
	}
	if c.Revision != nil && *c.Revision != rev {
		return overrides.Event{}, fmt.Errorf("%w: %s is at revision %d, not %d", overrides.ErrConflict, pop, rev, *c.Revision)
	}
	if why := a.refusal(list, next, now); why != "" {
		if !c.Force {
			return overrides.Event{}, errorf(http.StatusConflict, "refused: %s; force it with \"force\": true", why)
		}
		a.log.Warn().Str("pop", pop).Str("who", c.Who).Str("refusal", why).Str("remote", r.RemoteAddr).
			Msg("override forced past the min_active rule")
	}

	ev := overrides.Event{At: now}
	if del {
		err = a.cfg.Store.Delete(ctx, pop, rev, c.Who, c.Why)
		ev.Op, ev.Override = "delete", *cur
		ev.Override.Who, ev.Override.Why, ev.Override.Set, ev.Override.Expires = c.Who, c.Why, now, time.Time{}
	} else {
		o.Revision, err = a.cfg.Store.Put(ctx, o, rev)
		ev.Op, ev.Override = "set", o
	}
	if err != nil {
		return overrides.Event{}, err
	}
	from := pops.Active.String()
	if cur != nil && !cur.Expired(now) {
		from = cur.StateName
	}
	to := o.StateName
	if del {
		to = pops.Active.String()
	}
	lev := a.log.Warn().Str("pop", pop).Str("from", from).Str("to", to).Str("who", c.Who).Str("why", c.Why).
		Str("remote", r.RemoteAddr).Bool("forced", c.Force)
	if !o.Expires.IsZero() {
		lev = lev.Time("expires", o.Expires)
	}
	lev.Msg("PoP state set through the admin API")
	if a.cfg.Sync != nil {
		if err := a.cfg.Sync(ctx); err != nil {
			// Written: the watcher applies it when the store reports it.
			a.log.Warn().Err(err).Msg("override written but not applied at once")
		}
	}
	return ev, nil
}

// maxRefusedNamed bounds the records a refusal names.
const maxRefusedNamed = 5

// refusal says which geo records the overrides next would leave with
// fewer than MinActive eligible PoPs, as steer judges them with the
// current health, where they had more under cur; "" when none. A change
// that leaves a record no worse off (one with fewer already, for want of
// health) is not refused, so that undoing a drain is never refused.
func (a *Admin) refusal(cur, next []overrides.Override, now time.Time) string {
	minActive := a.cfg.MinActive
	snap := a.rep.srv.Zones()
	if minActive <= 0 || snap == nil {
		return ""
	}
	health := a.rep.health.Status()
	var none *steer.Overrides
	before := steer.Env{Health: health, Overrides: none.Next(overrides.InForce(cur, now))}
	after := steer.Env{Health: health, Overrides: none.Next(overrides.InForce(next, now))}
	var problems []string
	n := 0
	for _, z := range snap.Zones() {
		for _, g := range z.Geos() {
			left := after.EligiblePoPs(g)
			if len(left) >= minActive || len(left) >= len(before.EligiblePoPs(g)) {
				continue
			}
			if n++; n > maxRefusedNamed {
				continue
			}
			var why []string
			seen := map[string]bool{}
			for i := range g.Targets {
				t := &g.Targets[i]
				if seen[t.PoP.Name] || after.Eligible(t) {
					continue
				}
				seen[t.PoP.Name] = true
				switch healthy, _ := after.TargetHealth(t); {
				case after.TargetState(t) == pops.Down:
					why = append(why, t.PoP.Name+" down")
				case after.TargetState(t) == pops.Drain:
					why = append(why, t.PoP.Name+" drained")
				case !healthy:
					why = append(why, t.PoP.Name+" failing its probe")
				}
			}
			problems = append(problems, fmt.Sprintf("%s would have %d eligible PoPs (min_active %d): %s",
				g.Owner, len(left), minActive, strings.Join(why, ", ")))
		}
	}
	if n > maxRefusedNamed {
		problems = append(problems, fmt.Sprintf("and %d more records", n-maxRefusedNamed))
	}
	return strings.Join(problems, "; ")
}

// OverrideView is one override as GET /v1/overrides lists it.
type OverrideView struct {
	overrides.Override
	// Expired: listed until deleted, but no longer applied.
	Expired bool `json:"expired"`
}

// OverridesList is GET /v1/overrides's reply.
type OverridesList struct {
	Overrides []OverrideView `json:"overrides"`
	// InForce is the states applied now, by PoP.
	InForce map[string]string `json:"in_force"`
}

// HistoryList is GET /v1/overrides/history's reply.
type HistoryList struct {
	Events []overrides.Event `json:"events"`
}

// defaultHistory is how many events GET /v1/overrides/history answers
// without ?limit=.
const defaultHistory = 100

// overridesReader serves the read routes of the overrides: the read token
// may use them, and they exist without the admin API (a fleet's
// overrides may come from other instances).
type overridesReader struct {
	store overrides.Store
	now   func() time.Time
}

func (o overridesReader) list(w http.ResponseWriter, r *http.Request) {
	list, err := o.store.List(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	now := o.now()
	out := OverridesList{Overrides: []OverrideView{}, InForce: map[string]string{}}
	for _, ov := range list {
		out.Overrides = append(out.Overrides, OverrideView{Override: ov, Expired: ov.Expired(now)})
	}
	for pop, st := range overrides.InForce(list, now) {
		out.InForce[pop] = st.String()
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func (o overridesReader) history(w http.ResponseWriter, r *http.Request) {
	limit := defaultHistory
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > overrides.MaxHistory {
			http.Error(w, fmt.Sprintf("limit %q: a whole number from 1 to %d", s, overrides.MaxHistory), http.StatusBadRequest)
			return
		}
		limit = n
	}
	events, err := o.store.History(r.Context(), limit)
	if err != nil {
		writeError(w, err)
		return
	}
	if events == nil {
		events = []overrides.Event{}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(HistoryList{Events: events})
}

// subject checks what an override names against snap: a PoP of the
// configuration ("fra"), or one geo record's target at a PoP
// ("fra@www.example.com.", zones.TargetKey), and returns it in its
// canonical form (the owner lower case, with its final dot).
func subject(snap *zones.Snapshot, name string) (string, error) {
	pop, owner, target := strings.Cut(name, "@")
	if snap == nil || snap.PoPs().Get(pop) == nil {
		return "", errorf(http.StatusNotFound, "no PoP %q in the configuration", pop)
	}
	if !target {
		return pop, nil
	}
	owner = strings.ToLower(owner)
	if !strings.HasSuffix(owner, ".") {
		owner += "."
	}
	if z := snap.Match(owner); z != nil {
		if n := z.Node(owner); n != nil && n.Geo() != nil {
			for i := range n.Geo().Targets {
				if n.Geo().Targets[i].PoP.Name == pop {
					return zones.TargetKey(pop, owner), nil
				}
			}
			return "", errorf(http.StatusNotFound, "the geo record %s has no target at %s", owner, pop)
		}
	}
	return "", errorf(http.StatusNotFound, "no geo record %s in the zones served", owner)
}
