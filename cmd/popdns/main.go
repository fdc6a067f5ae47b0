// Command popdns is the popdns GeoDNS authoritative server.
//
//	popdns                      serve the built-in demo on 127.0.0.1:5353
//	popdns -config popdns.yaml  serve a configuration
//	popdns check PATH...        validate zone files, zone directories or configs
//	popdns version              print the version
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var quiet exitError
		if !errors.As(err, &quiet) {
			fmt.Fprintln(os.Stderr, "popdns:", err)
		}
		os.Exit(1)
	}
}

// exitError ends the process with status 1 without printing anything more:
// the command already reported what went wrong.
type exitError struct{}

func (exitError) Error() string { return "exit status 1" }
