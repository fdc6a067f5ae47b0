// Command popdns is the popdns GeoDNS authoritative server.
//
//	popdns [flags]              serve (the built-in demo without -config)
//	popdns check PATH...        validate zone files, zone directories or configs
//	popdns explain NAME [TYPE]  explain the answer a client would get
//	popdns dnssec COMMAND ...   make and handle DNSSEC key files (keygen, settime, ds, keys)
//	popdns admin COMMAND ...    drain, undrain, list and history of PoP overrides, through an instance's HTTP API
//	popdns version              print the version
//	popdns help [COMMAND]       print the usage of popdns or of a command
//
// Flags may stand before or after a command's arguments.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
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

// run is the whole program short of process exit, so tests can drive it.
// Help asked for goes to stdout with status 0; a mistake on the command
// line goes to stderr, with the usage of the command it was made in.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	err := dispatch(ctx, args, stdout, stderr)
	var usage *usageError
	if errors.As(err, &usage) {
		return usage.report(stdout, stderr)
	}
	return err
}

// commands are the words dispatch takes as a command rather than as an
// argument of the server: help and the usage name them all.
const commands = "check, explain, dnssec, admin, healthcheck, latency, version and help"

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return runServe(ctx, args, stderr)
	}
	switch args[0] {
	case "check":
		return runCheck(args[1:], stdout, stderr)
	case "explain":
		return runExplain(args[1:], stdout, stderr)
	case "dnssec":
		return runDNSSEC(args[1:], stdout, stderr)
	case "admin":
		return runAdmin(ctx, args[1:], stdout)
	case "healthcheck":
		return runHealthcheck(ctx, args[1:], stdout)
	case "latency":
		return runLatency(ctx, args[1:], stdout)
	case "version":
		return runVersion(args[1:], stdout)
	case "help":
		return runHelp(ctx, args[1:], stdout, stderr)
	}
	return runServe(ctx, args, stderr)
}

// runHelp prints the usage of popdns, or of the command it names, as -h
// would.
func runHelp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("popdns help", flag.ContinueOnError)
	fl.Usage = func() {
		fmt.Fprintf(fl.Output(), "usage: popdns help [COMMAND]  (commands: %s; popdns help dnssec COMMAND)\n", commands)
	}
	rest, err := parseArgs(fl, args)
	switch {
	case err != nil:
		return err
	case len(rest) > 0 && rest[0] == "dnssec":
		return dnssecHelp(rest[1:], stdout, stderr)
	case len(rest) > 1:
		return &usageError{fl: fl, err: fmt.Errorf("want at most one command, got %q", rest)}
	case len(rest) == 0, rest[0] == "help":
		// The serve flags are popdns's own, so its -h is the overview.
		return runServe(ctx, []string{"-h"}, stderr)
	case rest[0] == "check" || rest[0] == "explain" || rest[0] == "version" || rest[0] == "admin" || rest[0] == "healthcheck" || rest[0] == "latency":
		return dispatch(ctx, []string{rest[0], "-h"}, stdout, stderr)
	}
	return &usageError{fl: fl, err: fmt.Errorf("unknown command %q", rest[0])}
}

func runVersion(args []string, stdout io.Writer) error {
	fl := flag.NewFlagSet("popdns version", flag.ContinueOnError)
	fl.Usage = func() { fmt.Fprintln(fl.Output(), "usage: popdns version") }
	rest, err := parseArgs(fl, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return &usageError{fl: fl, err: fmt.Errorf("unexpected argument %q", rest[0])}
	}
	fmt.Fprintln(stdout, versionString())
	return nil
}

// serveUsage is the usage of popdns itself: the commands, then the flags
// of the server.
func serveUsage(fl *flag.FlagSet) {
	fmt.Fprint(fl.Output(), `usage:
  popdns [flags]                      serve (the built-in demo without -config)
  popdns check [-config FILE] PATH... validate zone files, zone directories or configuration files
  popdns explain [flags] NAME [TYPE]  explain the answer a client would get (popdns help explain)
  popdns dnssec COMMAND ...           make and handle DNSSEC key files: keygen, settime, ds, keys
                                      (popdns help dnssec)
  popdns admin COMMAND ...            drain, undrain, list and history of PoP overrides through a running
                                      instance's HTTP API (popdns help admin)
  popdns version                      print the version
  popdns help [COMMAND]               print this, or a command's usage and flags

Flags may stand before or after arguments; -- ends them.

flags:
`)
	fl.PrintDefaults()
}

// parseArgs parses fl's flags wherever they stand among args, so that
// "popdns check zones -config popdns.yaml" reads -config as a flag, not as
// a path. "--" ends the flags. It returns the other arguments in order. A
// mistake, or -h, comes back as a *usageError for run to report: fl's
// Usage then prints to fl.Output().
func parseArgs(fl *flag.FlagSet, args []string) ([]string, error) {
	// The flag package prints its error and the usage itself; run prints
	// them once it knows whether they go to stdout or stderr.
	fl.SetOutput(io.Discard)
	var rest []string
	for {
		if err := fl.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, &usageError{fl: fl}
			}
			return nil, &usageError{fl: fl, err: err}
		}
		left := fl.Args()
		if len(left) == 0 {
			return rest, nil
		}
		if used := len(args) - len(left); used > 0 && args[used-1] == "--" {
			return append(rest, left...), nil
		}
		rest = append(rest, left[0])
		args = left[1:]
	}
}

// usageError is a mistake on a command line (err), or a request for help
// (err nil). fl is the flag set of the command it was made in.
type usageError struct {
	fl  *flag.FlagSet
	err error
}

func (e *usageError) Error() string {
	if e.err == nil {
		return e.fl.Name() + ": help requested"
	}
	return e.fl.Name() + ": " + e.err.Error()
}

func (e *usageError) Unwrap() error { return e.err }

// report prints help to stdout and succeeds, or prints the mistake and
// the usage to stderr and fails.
func (e *usageError) report(stdout, stderr io.Writer) error {
	if e.err == nil {
		e.fl.SetOutput(stdout)
		e.fl.Usage()
		return nil
	}
	fmt.Fprintln(stderr, e.Error())
	e.fl.SetOutput(stderr)
	e.fl.Usage()
	return exitError{}
}

// exitError ends the process with status 1 without printing anything more:
// the command already reported what went wrong.
type exitError struct{}

func (exitError) Error() string { return "exit status 1" }
