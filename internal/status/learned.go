package status

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/popdns/popdns/internal/learned"
	"github.com/popdns/popdns/latency/learn"
)

// Learned is the learned-latency table as the HTTP endpoint and the
// status read it: *learned.Service.
type Learned interface {
	// Ingest takes a batch (learned.Service.Ingest).
	Ingest(data []byte, format learn.Format, source string) (learned.Report, error)
	// WriteTable writes the published table as a latency-table CSV.
	WriteTable(w io.Writer) error
	// Info is the table's state for /status.
	Info() learned.Info
	// AdmitIngest takes a slot for a batch about to be read; ok false
	// when too many are being read (learned.Service.AdmitIngest).
	AdmitIngest() (release func(), ok bool)
}

// Retry-After of a batch refused for now: busy (another batch will be
// done within about a second) and the new-cell budget spent (it refills
// over learned.DefaultNewWindow; a tenth of it is back in 6 s).
const (
	retryBusy   = "1"
	retryBudget = "10"
)

// MaxIngestBody bounds a POST /v1/latency body: the largest batch
// learn.ParseBatch takes, so that a batch over it is refused before it is
// read whole.
const MaxIngestBody = learn.DefaultMaxBytes

// learnedEndpoint serves POST /v1/latency (the ingest token) and GET
// /v1/latency (the read token).
type learnedEndpoint struct{ l Learned }

// formatOf maps a request's Content-Type to a batch format; ok is false
// for a type the endpoint does not take.
func formatOf(contentType string) (learn.Format, bool) {
	if contentType == "" {
		return learn.FormatAuto, true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return 0, false
	}
	switch mt {
	case "application/x-ndjson", "application/jsonl", "application/json":
		return learn.FormatJSONLines, true
	case "text/csv":
		return learn.FormatCSV, true
	case "text/plain":
		return learn.FormatAuto, true
	}
	return 0, false
}

// jsonError answers an error as {"error": msg}, which agents parse as
// they do the 200 reply.
func jsonError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func (e learnedEndpoint) ingest(w http.ResponseWriter, r *http.Request) {
	format, ok := formatOf(r.Header.Get("Content-Type"))
	if !ok {
		jsonError(w, http.StatusUnsupportedMediaType,
			"Content-Type must be application/x-ndjson or application/json (JSON lines), or text/csv")
		return
	}
	// Before the body is read: each batch being read holds up to
	// MaxIngestBody, so concurrent requests are bounded, not their sum.
	release, ok := e.l.AdmitIngest()
	if !ok {
		w.Header().Set("Retry-After", retryBusy)
		jsonError(w, http.StatusServiceUnavailable, "too many batches being ingested at once; try again after Retry-After")
		return
	}
	defer release()
	data, err := io.ReadAll(r.Body)
	if err != nil {
		if tooBig := (*http.MaxBytesError)(nil); errors.As(err, &tooBig) {
			jsonError(w, http.StatusRequestEntityTooLarge, "batch larger than the limit; split it")
			return
		}
		jsonError(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	rep, err := e.l.Ingest(data, format, learned.SourceHTTP)
	switch {
	case errors.Is(err, learned.ErrBusy):
		w.Header().Set("Retry-After", retryBudget)
		jsonError(w, http.StatusTooManyRequests, err.Error())
		return
	case errors.Is(err, learned.ErrRefused):
		jsonError(w, http.StatusRequestEntityTooLarge, err.Error())
		return
	case err != nil:
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(rep)
}

func (e learnedEndpoint) table(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	_ = e.l.WriteTable(w)
}
