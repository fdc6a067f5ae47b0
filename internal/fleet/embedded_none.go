//go:build popdns_noembed

package fleet

import (
	"context"
	"errors"

	"github.com/rs/zerolog"
)

// embeddedServer stands for the server type in a build without it.
type embeddedServer interface {
	ClientURL() string
	Shutdown()
	WaitForShutdown()
}

func startEmbedded(context.Context, Config, zerolog.Logger) (embeddedServer, error) {
	return nil, errors.New("fleet: Embedded: this popdns is built without the embedded NATS server (tag popdns_noembed); use an external NATS")
}
