//go:build popdns_noembed

package fleet

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

func TestNoEmbed(t *testing.T) {
	_, err := Open(t.Context(), Config{Instance: "a", Embedded: &Embedded{StoreDir: t.TempDir()}}, zerolog.Nop(), prometheus.NewRegistry())
	if err == nil || !strings.Contains(err.Error(), "popdns_noembed") {
		t.Errorf("Open with Embedded in a build without it: %v", err)
	}
}
