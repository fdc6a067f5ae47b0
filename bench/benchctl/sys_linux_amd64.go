//go:build linux && amd64

package main

const sysSchedSetattr = 314
