// Package rrl owns response rate limiting (RRL) for popdns's UDP replies:
// the accounts, their rates, and the verdict on each reply (send it, send
// a minimal truncated one instead, drop it, or send it and only count it).
// It knows nothing of sockets, messages or metrics: dnsserver's general
// path and its UDP fast path (dnsserver/internal/udpfast) each classify a
// reply, ask Limiter.Check, and act on the Action; cmd/popdns decodes its
// Config. It is a package of its own, at the bottom of the import table,
// because all three need its types and udpfast may not import dnsserver.
//
// # Why
//
// A UDP query's source address can be forged. Without a limit, a server
// answering for popular names is an amplifier: a 44-byte query for a
// large TXT set sends 1,160 bytes to the forged victim, as often as the
// attacker likes. RRL bounds how many similar replies one network gets
// per second; a real resolver that happens to share the account still
// gets through, because every Slip-th limited reply goes out truncated
// (TC=1, the question and nothing else) and a resolver retries those over
// TCP, which cannot be forged and is never limited.
//
// # Accounts
//
// A reply is charged to the account of (source network, class, name):
//
//   - the source address masked to Config.IPv4Prefix or IPv6Prefix bits
//     (/24 and /56 by default: one site, one customer);
//   - the Class of the reply: an answer, NXDOMAIN, NODATA, a referral or
//     an error;
//   - for an answer, the question's name and type; for every other class,
//     the zone (or none), so that a flood of random names in one zone —
//     each NXDOMAIN — shares one account.
//
// # Rate and burst
//
// Each account is a token bucket kept as one timestamp (GCRA, the
// "virtual scheduling" form): a reply is allowed when the account's
// theoretical arrival time is less than Burst intervals ahead of now, and
// moves it one interval (1/ResponsesPerSecond) on. A limited reply does
// not move it, so an account recovers as soon as its source slows down,
// and a burst of Burst replies after a quiet second always passes.
//
// # The table
//
// Accounts live in a fixed table of Config.TableSize buckets, allocated
// once: memory is bounded whatever the number of sources (16 bytes a
// bucket). An account is found by a hash, seeded per Limiter so that an
// attacker cannot aim at a victim's bucket; two accounts that hash to the
// same bucket simply share it, and its rate, as if they were one. That
// errs towards limiting: a size well above the number of accounts active
// in any one second keeps it rare.
//
// # Concurrency and cost
//
// Check is safe for concurrent use, takes no lock and does not allocate:
// a bucket is read and moved on with one compare-and-swap. The fast path's
// readers (one per socket) and the general path's goroutines share one
// table; two of them touch the same cache line only when they serve
// sources that hash close together, and contend only on one account
// served by several at once, which the account's own rate then bounds.
// Time is the caller's: a monotonic reading in nanoseconds (Limiter.Now),
// which the fast path reads once per batch.
//
// Exempt networks are checked only once an account is over its limit, so
// a list of them costs nothing on the common path. Callers skip Check for
// queries that should never be limited: TCP, and UDP queries with a valid
// server cookie (RFC 7873 §5.4: the cookie proves the source is not
// forged).
package rrl
