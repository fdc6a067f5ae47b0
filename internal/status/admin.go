package status

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/popdns/popdns/pops"
	"github.com/rs/zerolog"
)

// PoPStates is the runtime PoP states the admin API reads and sets:
// *dnsserver.Server.
type PoPStates interface {
	PoPStates() map[string]pops.AdminState
	SetPoPStates(map[string]pops.AdminState)
}

// Admin is the local admin API: operators drain a PoP or take it down
// without editing files. It is off unless the configuration names a token
// file, and every request must carry that token. Its states last until
// changed or until popdns restarts; the configuration's states apply
// beside them, the stronger one winning. Reporter.Handler serves it; it is
// safe for concurrent use.
type Admin struct {
	rep    *Reporter
	states PoPStates
	token  string
	log    zerolog.Logger
	mu     sync.Mutex // serializes read-modify-write of the PoP states
}

// NewAdmin returns the admin API, which sets states and answers with the
// PoP's status from rep; every request must carry token.
func NewAdmin(rep *Reporter, states PoPStates, token string, log zerolog.Logger) *Admin {
	return &Admin{rep: rep, states: states, token: token, log: log.With().Str("component", "admin").Logger()}
}

// maxAdminBody bounds an admin request's body, which is one short JSON
// object.
const maxAdminBody = 4096

// setPoPState serves POST /v1/pops/{name}/state with a body such as
// {"state": "drain"}: active, drain or down. It answers the PoP's status.
func (a *Admin) setPoPState(w http.ResponseWriter, r *http.Request) {
	// The guard in front (Reporter.Handler) has checked the admin token.
	name := r.PathValue("name")
	var body struct {
		State string `json:"state"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		if tooBig := (*http.MaxBytesError)(nil); errors.As(err, &tooBig) {
			http.Error(w, fmt.Sprintf("body larger than %d bytes; it is JSON such as {\"state\": \"drain\"}", tooBig.Limit),
				http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, fmt.Sprintf(`body must be JSON such as {"state": "drain"}: %v`, err), http.StatusBadRequest)
		return
	}
	// The API takes the states' exact names, not the files' looser forms
	// (any case, or nothing for active).
	state, ok := pops.ParseAdminState(body.State)
	if !ok || body.State != state.String() {
		http.Error(w, fmt.Sprintf("state %q is not one of active, drain, down", body.State), http.StatusBadRequest)
		return
	}
	if a.rep.srv.Zones().PoPs().Get(name) == nil {
		http.Error(w, fmt.Sprintf("no PoP %q in the configuration", name), http.StatusNotFound)
		return
	}

	a.mu.Lock()
	states := a.states.PoPStates()
	before := states[name]
	states[name] = state
	a.states.SetPoPStates(states)
	a.mu.Unlock()
	a.log.Warn().Str("pop", name).Str("from", before.String()).Str("to", state.String()).
		Str("remote", r.RemoteAddr).Msg("PoP state set through the admin API")

	for _, p := range a.rep.Status().PoPs {
		if p.Name == name {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(p)
			return
		}
	}
}
