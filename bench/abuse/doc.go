// Command abuse is popdns's reproducible abuse suite (issue 13): it starts
// the real popdns binary, fresh for each scenario, with a configuration of
// its own (popdns.yaml.tmpl, zone.yaml.tmpl and whichever knobs/ fragments
// the binary accepts), attacks it over loopback while a legitimate client
// measures UDP, TCP and HTTP /healthz from another source address, and
// reports per scenario what the attacker got back (answered, slipped with
// TC=1, dropped, amplification), what the legitimate client got (success
// rate, p50/p99), popdns's CPU and memory, and whether a health probe
// failed. With -o it writes that as a labelled section of bench/ABUSE.md.
//
// Every scenario is bounded in count and time, and every address is in
// 127.0.0.0/8 or ::1: attackers bind to addresses spread over 127.0.0.0/8
// outside 127.0.0.0/24 (Linux routes all of 127/8 to lo), the legitimate
// client is 127.0.0.1. Linux only: it reads /proc for the server's cost.
package main
