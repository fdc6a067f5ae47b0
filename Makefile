# A thin convenience layer: every target is a plain go command or a step of
# .ci/run, and `go test ./...` works without make.

.DEFAULT_GOAL := help

FUZZTIME ?= 15s
VERSION  ?= dev

.PHONY: help test lint fuzz build demo

help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

test: ## Run the tests with the race detector (go test -race ./...).
	go test -race ./...

lint: ## Check gofmt, go vet and staticcheck, as CI does.
	.ci/run fmt vet staticcheck

fuzz: ## Run every fuzz target for FUZZTIME each (default 15s).
	FUZZTIME=$(FUZZTIME) .ci/run fuzz

build: ## Build a static binary into bin/popdns.
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o bin/popdns ./cmd/popdns

demo: ## Serve the built-in demo on 127.0.0.1:5353 (HTTP on 127.0.0.1:8053).
	go run ./cmd/popdns
