//go:build linux && arm64

package main

const sysSchedSetattr = 274
