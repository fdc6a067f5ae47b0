// Command loadgen is the benchmark's load generator: it owns sending DNS
// queries to one server on loopback and measuring what comes back. Unlike
// dnsperf it gives each query its own EDNS Client Subnet, from a query list
// that benchctl prepare writes.
//
// Several connected UDP sockets each keep their own queries in flight, and
// send and receive in batches (sendmmsg/recvmmsg) through the runtime's
// poller, so that one core of load can outrun the servers under test. Two
// modes: max keeps -outstanding queries in flight per socket (the server's
// throughput), rate sends -rate queries a second spread over time (latency
// at a given load). A run is a warm-up, then a measured window, then a
// drain; only the window counts. With -pid it reads the server's CPU time
// (utime+stime of the process and its descendants, /proc/PID/stat) at the
// window's edges and its memory (VmRSS, VmHWM) at the end, and reports the
// CPU time per answered query. Output is JSON.
//
// It sends only to 127.0.0.0/8 or ::1, and every run is bounded by
// -duration and -count. Linux only (amd64, arm64).
package main
