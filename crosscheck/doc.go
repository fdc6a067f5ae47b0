// Package crosscheck holds tests only: it checks popdns on the wire against
// real peers and real data.
//
//   - Knot DNS, the reference authoritative server, serving the same zone:
//     answers are compared query by query, and every difference fails the
//     test unless an allow-list entry names the RFC under which both
//     answers are correct.
//   - Unbound with its subnetcache module, as a resolver in front of
//     popdns: clients in different subnets get different PoPs through it,
//     and its cache honours the ECS scopes popdns returns, widened ones
//     included: once popdns has widened a scope, Unbound answers the whole
//     prefix from its cache, each client as popdns would.
//   - DNS cookies (slow tests, -tags slow): dig and kdig send a client
//     cookie, send back the server cookie they got, and popdns counts it
//     valid; knotd with its cookies module under the same secret accepts
//     popdns's server cookies and popdns knotd's (RFC 9018).
//   - DNSSEC (slow tests): a signing server under test (Knot DNS signing
//     itself, or popdns) serves a signed zone; a validating Unbound with
//     the zone's DS as trust anchor must set AD on every answer the zone
//     can prove, positive and negative, and answer SERVFAIL when the
//     anchor matches no key; delv validates the same names on its own, and
//     kdig +dnssec sees the signatures.
//   - DNSSEC rollovers (slow tests): the procedures of docs/dnssec.md
//     (ZSK pre-publish, CSK and KSK double-DS) done step by step with the
//     real binary's key commands against popdns serving the child and a
//     signed parent; one validating Unbound, its cache kept warm, sets AD
//     at every step, and a step left out makes it answer SERVFAIL.
//   - The real GeoLite2 City database: clients on six continents get their
//     nearest PoP, with the database network as the ECS scope.
//   - yaml-language-server (a slow test), the language server of editors'
//     YAML support: it validates the bundled configurations and zones with
//     schemas/ as an editor does, and flags each problem of broken ones on
//     its line.
//
// Each test skips, saying what to install or fetch, when its peer is
// missing; .ci/run installs them all:
//
//	apt-get install knot knot-dnsutils unbound bind9-dnsutils nodejs npm
//	npm install -g yaml-language-server@1.25.0
//
// and README.md ("Running the tests") says how to fetch GeoLite2.
package crosscheck
