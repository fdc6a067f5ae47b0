package zones

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/pops"
)

// parseTestFile is the file name every parse test passes to ParseFile; each
// reported *Error must carry it.
const parseTestFile = "example.test.yaml"

// zoneHead is a minimal valid zone, 7 lines long: the first line of a body
// appended to it is line 8. Bodies add owner names under records.
const zoneHead = `origin: example.test.
records:
  "@":
    - soa: ns1 hostmaster 1 7200 3600 1209600 300
    - ns: ns1
  ns1:
    - a: 192.0.2.53
`

// wantErr is one expected *Error: File must be parseTestFile, Line and Field must
// match exactly and Msg must contain the substring msg.
type wantErr struct {
	line  int
	field string
	msg   string
}

func (w wantErr) String() string {
	return fmt.Sprintf("line %d, field %q, msg ~ %q", w.line, w.field, w.msg)
}

func (w wantErr) matches(e *Error) bool {
	return e.File == parseTestFile && e.Line == w.line && e.Field == w.field && strings.Contains(e.Msg, w.msg)
}

// parseNoPanic runs ParseFile and turns a panic into a failure of this test
// alone, so that one bad input does not kill the whole test binary.
func parseNoPanic(t *testing.T, file string, data []byte) (*Zone, error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("ParseFile panicked: %v", r)
		}
	}()
	return ParseFile(file, data, nil)
}

// checkErrors asserts that err is an ErrorList holding exactly the wanted
// errors, in any order.
func checkErrors(t *testing.T, err error, want []wantErr) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want %d: %v", len(want), want)
	}
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error %v (%T) is not an ErrorList", err, err)
	}
	used := make([]bool, len(list))
	for _, w := range want {
		found := false
		for i, e := range list {
			if !used[i] && w.matches(e) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			t.Errorf("missing error {%v}", w)
		}
	}
	for i, e := range list {
		if !used[i] {
			t.Errorf("unexpected error %#v", *e)
		}
	}
	// Every element must also be reachable through errors.As.
	var one *Error
	if !errors.As(err, &one) {
		t.Errorf("errors.As(*Error) failed on %v", err)
	}
}

func TestParseFileErrors(t *testing.T) {
	const ds = "12345 13 2 6B5F0F3C2A4C2D8D7A2B6E1E0A3F1C9D8E7B6A5F4E3D2C1B0A9F8E7D6C5B4A39"
	tests := []struct {
		name string
		in   string
		want []wantErr
	}{
		// Whole-file problems.
		{
			name: "invalid YAML tab indent",
			in:   "origin: example.test.\nrecords:\n\twww:\n",
			want: []wantErr{{3, "", "invalid YAML: found character that cannot start any token"}},
		},
		{
			name: "invalid YAML nested mapping on one line",
			in:   "origin: example.test.\nrecords: www: a\n",
			want: []wantErr{{2, "", "invalid YAML: mapping values are not allowed"}},
		},
		{
			name: "empty file",
			in:   "",
			want: []wantErr{{0, "", "empty zone file"}},
		},
		{
			name: "only a comment",
			in:   "# nothing here\n",
			want: []wantErr{{0, "", "empty zone file"}},
		},
		{
			name: "top level is a list",
			in:   "- origin: example.test.\n",
			want: []wantErr{{1, "", "a zone file is a mapping"}},
		},
		{
			name: "unknown top-level key",
			in:   zoneHead + "serial: 5\n",
			want: []wantErr{{8, "serial", "unknown key"}},
		},
		{
			name: "duplicate top-level key",
			in:   "ttl: 60\n" + zoneHead + "ttl: 120\n",
			want: []wantErr{{9, "ttl", "repeated key (first at line 1)"}},
		},
		{
			name: "missing origin",
			in:   "ttl: 60\nrecords:\n  \"@\":\n    - ns: ns1.example.test.\n",
			want: []wantErr{{1, "origin", "missing"}},
		},
		{
			name: "origin with empty label",
			in:   "origin: example..test.\nrecords: {}\n",
			want: []wantErr{{1, "origin", "not a valid domain name"}},
		},
		{
			name: "origin not a scalar",
			in:   "ttl: 60\norigin: [example.test.]\nrecords: {}\n",
			want: []wantErr{{2, "origin", "must be a domain name"}},
		},
		{
			name: "origin empty",
			in:   "origin: \"\"\nrecords: {}\n",
			want: []wantErr{{1, "origin", "must be a domain name"}},
		},
		{
			name: "ttl not a number",
			in:   "ttl: 1h\n" + zoneHead,
			want: []wantErr{{1, "ttl", `whole number of seconds, got "1h"`}},
		},
		{
			name: "ttl negative",
			in:   "ttl: -1\n" + zoneHead,
			want: []wantErr{{1, "ttl", "whole number"}},
		},
		{
			name: "ttl above 2^31-1",
			in:   "ttl: 2147483648\n" + zoneHead,
			want: []wantErr{{1, "ttl", "at most 2147483647"}},
		},
		{
			name: "ttl a list",
			in:   "ttl: [60]\n" + zoneHead,
			want: []wantErr{{1, "ttl", "must be a number of seconds"}},
		},
		{
			name: "records missing",
			in:   "origin: example.test.\n",
			want: []wantErr{{1, "records", "missing"}},
		},
		{
			name: "records not a mapping",
			in:   "origin: example.test.\nrecords:\n  - www\n",
			want: []wantErr{{3, "records", "must map owner names"}},
		},
		{
			name: "records null",
			in:   "origin: example.test.\nrecords:\n",
			want: []wantErr{{2, "records", "must map owner names"}},
		},

		// Owner names.
		{
			name: "owner outside the origin",
			in:   zoneHead + "  www.other.test.:\n    - a: 192.0.2.1\n",
			want: []wantErr{{8, "records.www.other.test.", "outside the zone example.test."}},
		},
		{
			name: "owner is the parent of the origin",
			in:   zoneHead + "  test.:\n    - a: 192.0.2.1\n",
			want: []wantErr{{8, "records.test.", "outside the zone"}},
		},
		{
			name: "owner empty",
			in:   zoneHead + "  \"\":\n    - a: 192.0.2.1\n",
			want: []wantErr{{8, "records.", "empty owner name"}},
		},
		{
			name: "owner with empty label",
			in:   zoneHead + "  a..b:\n    - a: 192.0.2.1\n",
			want: []wantErr{{8, "records.a..b", "not a valid owner name"}},
		},
		{
			// The zone parser would read "x 60 in txt y" as owner x, TTL 60,
			// type TXT: the record must not change type or owner behind the
			// file's back.
			name: "owner with spaces",
			in:   zoneHead + "  \"x 60 in txt y\":\n    - a: 192.0.2.1\n",
			want: []wantErr{{8, "records.x 60 in txt y", "not a valid owner name"}},
		},
		{
			// Same trick, placing a TXT record at evil.com. inside this zone.
			name: "owner with spaces escaping the zone",
			in:   zoneHead + "  \"evil.com. 60 in txt y\":\n    - a: 192.0.2.1\n",
			want: []wantErr{{8, "records.evil.com. 60 in txt y", "not a valid owner name"}},
		},
		{
			name: "owner defined twice by case and absolute name",
			in: zoneHead +
				"  www:\n    - a: 192.0.2.1\n" + // 8
				"  WWW:\n    - a: 192.0.2.2\n" + // 10
				"  www.example.test.:\n    - a: 192.0.2.3\n", // 12
			want: []wantErr{
				{10, "records.WWW", "names www.example.test. again (first at line 8)"},
				{12, "records.www.example.test.", "again (first at line 8)"},
			},
		},
		{
			name: "apex as @ and by name",
			in:   zoneHead + "  Example.Test.:\n    - a: 192.0.2.1\n",
			want: []wantErr{{8, "records.Example.Test.", "names example.test. again (first at line 3)"}},
		},
		{
			name: "owner value not a list",
			in:   zoneHead + "  www:\n    a: 192.0.2.1\n",
			want: []wantErr{{9, "records.www", "must be a list of records"}},
		},

		// Record entries.
		{
			name: "entry not a mapping",
			in:   zoneHead + "  www:\n    - 192.0.2.1\n",
			want: []wantErr{{9, "records.www[0]", "a record is a mapping"}},
		},
		{
			name: "unknown type key",
			in:   zoneHead + "  www:\n    - a: 192.0.2.1\n    - addr: 192.0.2.2\n",
			want: []wantErr{{10, "records.www[1].addr", "unknown key (expected a record type, ttl or geo)"}},
		},
		{
			name: "two types in one entry",
			in:   zoneHead + "  www:\n    - a: 192.0.2.1\n      aaaa: 2001:db8::1\n",
			want: []wantErr{{10, "records.www[0].aaaa", "one record per entry: this entry already has a at line 9"}},
		},
		{
			name: "no type in entry",
			in:   zoneHead + "  www:\n    - ttl: 60\n",
			want: []wantErr{{9, "records.www[0]", "no record type"}},
		},
		{
			name: "bad entry ttl",
			in:   zoneHead + "  www:\n    - { a: 192.0.2.1, ttl: soon }\n",
			want: []wantErr{{9, "records.www[0].ttl", "whole number"}},
		},
		{
			name: "entry ttl above 2^31-1",
			in:   zoneHead + "  www:\n    - a: 192.0.2.1\n      ttl: 4294967296\n",
			want: []wantErr{{10, "records.www[0].ttl", "at most 2147483647"}},
		},
		{
			// Strict decoding (STYLE §3): a key given twice must not be
			// resolved silently by taking the last value.
			name: "ttl twice in one entry",
			in:   zoneHead + "  www:\n    - { a: 192.0.2.1, ttl: 60, ttl: 30 }\n",
			want: []wantErr{{9, "records.www[0].ttl", "repeated key (first at line 9)"}},
		},
		{
			name: "data not a scalar",
			in:   zoneHead + "  www:\n    - a: [192.0.2.1]\n",
			want: []wantErr{{9, "records.www[0].a", "single value"}},
		},

		// RDATA.
		{
			name: "bad A",
			in:   zoneHead + "  www:\n    - a: 300.1.1.1\n",
			want: []wantErr{{9, "records.www[0].a", "bad A data"}},
		},
		{
			name: "IPv4 in AAAA",
			in:   zoneHead + "  www:\n    - aaaa: 192.0.2.1\n",
			want: []wantErr{{9, "records.www[0].aaaa", "bad AAAA data"}},
		},
		{
			name: "MX without preference",
			in:   zoneHead + "  www:\n    - mx: mail\n",
			want: []wantErr{{9, "records.www[0].mx", "bad MX data"}},
		},
		{
			name: "SRV missing a field",
			in:   zoneHead + "  www:\n    - srv: 10 60 sip\n",
			want: []wantErr{{9, "records.www[0].srv", "bad SRV data"}},
		},
		{
			name: "CAA without value",
			in:   zoneHead + "  www:\n    - caa: 0 issue\n",
			want: []wantErr{{9, "records.www[0].caa", "bad CAA data"}},
		},
		{
			name: "CAA flag not a number",
			in:   zoneHead + "  www:\n    - caa: x issue \"ca.example\"\n",
			want: []wantErr{{9, "records.www[0].caa", "bad CAA data"}},
		},
		{
			name: "A with trailing garbage",
			in:   zoneHead + "  www:\n    - a: 192.0.2.1 192.0.2.2\n",
			want: []wantErr{{9, "records.www[0].a", "bad A data"}},
		},
		{
			// miekg/dns parses hex fields without checking them; such a
			// record cannot be packed, so every answer holding it fails.
			name: "DS digest not hex",
			in:   zoneHead + "  sub:\n    - ns: ns1\n    - ds: 12345 13 2 ZZ\n",
			want: []wantErr{{10, "records.sub[1].ds", "bad DS data"}},
		},
		{
			name: "SSHFP fingerprint of odd length",
			in:   zoneHead + "  www:\n    - sshfp: 4 2 abc\n",
			want: []wantErr{{9, "records.www[0].sshfp", "bad SSHFP data"}},
		},
		{
			name: "TLSA data of odd length",
			in:   zoneHead + "  _443._tcp.www:\n    - tlsa: 3 1 1 abc\n",
			want: []wantErr{{9, "records._443._tcp.www[0].tlsa", "bad TLSA data"}},
		},
		{
			name: "type key in upper case keeps a lower-case field",
			in:   zoneHead + "  www:\n    - MX: mail\n",
			want: []wantErr{{9, "records.www[0].mx", "bad MX data"}},
		},
		{
			name: "several bad RDATA in one list",
			in: zoneHead + "  www:\n" +
				"    - a: 192.0.2\n" + // 9
				"    - aaaa: 2001:db8::g\n" + // 10
				"    - mx: ten mail\n", // 11
			want: []wantErr{
				{9, "records.www[0].a", "bad A data"},
				{10, "records.www[1].aaaa", "bad AAAA data"},
				{11, "records.www[2].mx", "bad MX data"},
			},
		},
		{
			name: "empty rdata",
			in:   zoneHead + "  www:\n    - a: \"\"\n",
			want: []wantErr{{9, "records.www[0].a", "empty record data"}},
		},
		{
			name: "null rdata",
			in:   zoneHead + "  www:\n    - a:\n",
			want: []wantErr{{9, "records.www[0].a", "empty record data"}},
		},
		{
			name: "blank rdata",
			in:   zoneHead + "  www:\n    - a: \"   \"\n",
			want: []wantErr{{9, "records.www[0].a", "empty record data"}},
		},
		{
			// A TXT without a value is as empty as an A without one; an
			// empty character-string is written '""' explicitly.
			name: "null TXT rdata",
			in:   zoneHead + "  www:\n    - txt:\n",
			want: []wantErr{{9, "records.www[0].txt", "empty record data"}},
		},
		{
			name: "empty TXT rdata",
			in:   zoneHead + "  www:\n    - txt: \"\"\n",
			want: []wantErr{{9, "records.www[0].txt", "empty record data"}},
		},
		{
			name: "rdata with a newline",
			in:   zoneHead + "  www:\n    - a: \"192.0.2.1\\n192.0.2.2\"\n",
			want: []wantErr{{9, "records.www[0].a", "one line"}},
		},
		{
			name: "TXT with a newline",
			in:   zoneHead + "  www:\n    - txt: \"line one\\nline two\"\n",
			want: []wantErr{{9, "records.www[0].txt", "one line"}},
		},
		{
			name: "rdata with a carriage return",
			in:   zoneHead + "  www:\n    - cname: \"a\\rb\"\n",
			want: []wantErr{{9, "records.www[0].cname", "one line"}},
		},
		{
			name: "literal block rdata spans lines",
			in:   zoneHead + "  www:\n    - a: |\n        192.0.2.1\n        192.0.2.2\n",
			want: []wantErr{{9, "records.www[0].a", "one line"}},
		},

		// SOA.
		{
			name: "missing SOA",
			in:   "origin: example.test.\nrecords:\n  \"@\":\n    - ns: ns1.example.test.\n",
			want: []wantErr{{0, "records.@.soa", "missing"}},
		},
		{
			name: "SOA not at apex",
			in:   zoneHead + "  www:\n    - soa: ns1 hostmaster 2 7200 3600 1209600 300\n",
			want: []wantErr{{9, "records.www[0].soa", "SOA belongs at the zone apex"}},
		},
		{
			name: "duplicate SOA",
			in: "origin: example.test.\nrecords:\n  \"@\":\n" +
				"    - soa: ns1 hostmaster 1 7200 3600 1209600 300\n" + // 4
				"    - ns: ns1\n" +
				"    - soa: ns2 hostmaster 2 7200 3600 1209600 300\n", // 6
			want: []wantErr{{6, "records.@[2].soa", "duplicate SOA (first at line 4)"}},
		},
		{
			// miekg/dns fills missing trailing SOA fields with 0: a typo
			// must not silently set refresh, retry, expire and minimum to 0.
			name: "SOA short form missing its timers",
			in:   "origin: example.test.\nrecords:\n  \"@\":\n    - soa: ns1 hostmaster 1\n    - ns: ns1\n",
			want: []wantErr{{4, "records.@[0].soa", "SOA needs 7 fields"}},
		},
		{
			name: "SOA rname written as a mail address",
			in:   "origin: example.test.\nrecords:\n  \"@\":\n    - soa: ns1 hostmaster@example.test 1 2 3 4 5\n    - ns: ns1\n",
			want: []wantErr{{4, "records.@[0].soa", "mailbox written as a name"}},
		},
		{
			name: "SOA long form rname written as a mail address",
			in:   "origin: example.test.\nrecords:\n  \"@\":\n    - soa: { mname: ns1, rname: hostmaster@example.test }\n    - ns: ns1\n",
			want: []wantErr{{4, "records.@[0].soa.rname", "mailbox written as a name"}},
		},
		{
			name: "SOA long form missing mname and rname",
			in:   "origin: example.test.\nrecords:\n  \"@\":\n    - soa: { serial: 5 }\n    - ns: ns1\n",
			want: []wantErr{
				{4, "records.@[0].soa.mname", "missing"},
				{4, "records.@[0].soa.rname", "missing"},
			},
		},
		{
			name: "SOA long form unknown key",
			in: "origin: example.test.\nrecords:\n  \"@\":\n" +
				"    - soa:\n        mname: ns1\n        rname: hostmaster\n        refrash: 60\n    - ns: ns1\n",
			want: []wantErr{{7, "records.@[0].soa.refrash", "unknown key"}},
		},
		{
			name: "SOA long form value not a scalar",
			in: "origin: example.test.\nrecords:\n  \"@\":\n" +
				"    - soa:\n        mname: [ns1]\n        rname: hostmaster\n    - ns: ns1\n",
			want: []wantErr{
				{5, "records.@[0].soa.mname", "single value"},
				{5, "records.@[0].soa.mname", "missing"}, // the block mapping starts on line 5
			},
		},
		{
			name: "SOA long form bad timer",
			in:   "origin: example.test.\nrecords:\n  \"@\":\n    - soa: { mname: ns1, rname: hostmaster, retry: soon }\n    - ns: ns1\n",
			want: []wantErr{{4, "records.@[0].soa", "bad SOA data"}},
		},
		{
			name: "no apex NS",
			in:   "origin: example.test.\nrecords:\n  \"@\":\n    - soa: ns1 hostmaster 1 7200 3600 1209600 300\n",
			want: []wantErr{{0, "records.@.ns", "missing"}},
		},
		{
			name: "neither SOA nor NS",
			in:   "origin: example.test.\nrecords:\n  www:\n    - a: 192.0.2.1\n",
			want: []wantErr{
				{0, "records.@.soa", "missing"},
				{0, "records.@.ns", "missing"},
			},
		},

		// Rules across records.
		{
			name: "CNAME beside other data",
			in:   zoneHead + "  www:\n    - cname: web\n    - a: 192.0.2.1\n    - txt: hi\n",
			want: []wantErr{
				{10, "records.www[1].a", "A cannot sit beside the CNAME at line 9"},
				{11, "records.www[2].txt", "TXT cannot sit beside the CNAME at line 9"},
			},
		},
		{
			name: "CNAME at the apex",
			in: "origin: example.test.\nrecords:\n  \"@\":\n" +
				"    - soa: ns1 hostmaster 1 7200 3600 1209600 300\n" + // 4
				"    - ns: ns1\n" + // 5
				"    - cname: www.other.test.\n", // 6
			want: []wantErr{
				{4, "records.@[0].soa", "SOA cannot sit beside the CNAME at line 6"},
				{5, "records.@[1].ns", "NS cannot sit beside the CNAME at line 6"},
			},
		},
		{
			name: "two CNAMEs",
			in:   zoneHead + "  www:\n    - cname: web1\n    - cname: web2\n",
			want: []wantErr{{10, "records.www[1].cname", "at most one CNAME (first at line 9)"}},
		},
		{
			name: "duplicate record",
			in:   zoneHead + "  www:\n    - a: 192.0.2.1\n    - a: 192.0.2.2\n    - a: 192.0.2.1\n",
			want: []wantErr{{11, "records.www[2].a", "duplicate record (same as line 9)"}},
		},
		{
			// Past setIndexMin records the identities are in a map.
			name: "duplicates in a big RRset, one after a TTL refused",
			in: zoneHead + "  www:\n    - a: 192.0.2.1\n    - a: 192.0.2.2\n    - a: 192.0.2.3\n    - a: 192.0.2.4\n    - a: 192.0.2.5\n    - a: 192.0.2.6\n    - a: 192.0.2.7\n    - a: 192.0.2.8\n    - a: 192.0.2.9\n    - a: 192.0.2.10\n    - a: 192.0.2.11\n    - a: 192.0.2.12\n    - a: 192.0.2.13\n    - a: 192.0.2.14\n    - a: 192.0.2.15\n    - a: 192.0.2.16\n    - a: 192.0.2.17\n    - a: 192.0.2.18\n    - a: 192.0.2.19\n    - a: 192.0.2.20\n" + // 9-28
				"    - { a: 192.0.2.30, ttl: 5 }\n" + // 29
				"    - a: 192.0.2.20\n" + // 30
				"    - { a: 192.0.2.30, ttl: 5 }\n" + // 31
				"    - a: 192.0.2.2\n", // 32
			want: []wantErr{
				{29, "records.www[20].a.ttl", "TTL 5 differs from TTL 3600"},
				{30, "records.www[21].a", "duplicate record (same as line 28)"},
				{31, "records.www[22].a", "duplicate record (same as line 29)"},
				{32, "records.www[23].a", "duplicate record (same as line 10)"},
			},
		},
		{
			name: "duplicate record, target names differing in case",
			in:   zoneHead + "  www:\n    - mx: 10 Mail\n    - mx: 10 mail.EXAMPLE.test.\n",
			want: []wantErr{{10, "records.www[1].mx", "duplicate record (same as line 9)"}},
		},
		{
			name: "duplicate TXT",
			in:   zoneHead + "  www:\n    - txt: hello world\n    - txt: '\"hello world\"'\n",
			want: []wantErr{{10, "records.www[1].txt", "duplicate record (same as line 9)"}},
		},
		{
			// The digest is hex: the same bytes on the wire whatever the case.
			name: "duplicate DS differing in hex case",
			in: zoneHead + "  sub:\n    - ns: ns1\n" +
				"    - ds: " + ds + "\n" + // 10
				"    - ds: " + strings.ToLower(ds) + "\n", // 11
			want: []wantErr{{11, "records.sub[2].ds", "duplicate record (same as line 10)"}},
		},
		{
			name: "conflicting TTLs in one RRset",
			in:   zoneHead + "  www:\n    - { a: 192.0.2.1, ttl: 60 }\n    - a: 192.0.2.2\n",
			want: []wantErr{{10, "records.www[1].a.ttl", "TTL 3600 differs from TTL 60 of the same RRset at line 9"}},
		},
		{
			name: "same TTL written two ways is fine, third differs",
			in:   "ttl: 60\n" + zoneHead + "  www:\n    - a: 192.0.2.1\n    - { a: 192.0.2.2, ttl: 60 }\n    - { a: 192.0.2.3, ttl: 61 }\n",
			want: []wantErr{{12, "records.www[2].a.ttl", "TTL 61 differs"}},
		},
		{
			name: "DNAME rejected",
			in:   zoneHead + "  old:\n    - dname: new.example.\n",
			want: []wantErr{{9, "records.old[0].dname", "DNAME is not supported"}},
		},
		{
			name: "wildcard NS",
			in:   zoneHead + "  \"*\":\n    - ns: ns1\n",
			want: []wantErr{{9, "records.*[0].ns", "NS at a wildcard name"}},
		},
		{
			name: "DS not at a delegation",
			in:   zoneHead + "  www:\n    - ds: " + ds + "\n",
			want: []wantErr{{9, "records.www[0].ds", "DS belongs only at a delegation"}},
		},
		{
			name: "owner @. is not the apex",
			in:   zoneHead + "  \"@.\":\n    - a: 192.0.2.1\n",
			want: []wantErr{{8, "records.@.", "@. is outside the zone"}},
		},
		{
			name: "DS at the apex by name",
			in: "origin: example.test.\nrecords:\n  \"@\":\n    - soa: ns1 hostmaster 1 7200 3600 1209600 300\n    - ns: ns1\n" +
				"    - ds: " + ds + "\n", // 6
			want: []wantErr{{6, "records.@[2].ds", "DS belongs only at a delegation"}},
		},
		{
			name: "non-glue data below a delegation",
			in: zoneHead + "  sub:\n    - ns: ns.sub\n" +
				"  ns.sub:\n    - a: 192.0.2.99\n    - aaaa: 2001:db8::99\n" + // glue is fine
				"  www.sub:\n    - txt: hidden\n" + // 14
				"  deep.www.sub:\n    - mx: 10 mail\n", // 16
			want: []wantErr{
				{14, "records.www.sub[0].txt", "TXT below the delegation at sub.example.test."},
				{16, "records.deep.www.sub[0].mx", "MX below the delegation at sub.example.test."},
			},
		},
		{
			name: "NS below a delegation",
			in:   zoneHead + "  sub:\n    - ns: ns1\n  deeper.sub:\n    - ns: ns1\n",
			want: []wantErr{{11, "records.deeper.sub[0].ns", "NS below the delegation at sub.example.test."}},
		},
		{
			name: "data at a cut other than NS and DS",
			in: zoneHead + "  sub:\n    - ns: ns1\n" +
				"    - ds: " + ds + "\n" + // DS is fine at the cut
				"    - a: 192.0.2.7\n" + // 11
				"    - mx: 10 mail\n", // 12
			want: []wantErr{
				{11, "records.sub[2].a", "A at sub.example.test. is hidden by the delegation"},
				{12, "records.sub[3].mx", "MX at sub.example.test. is hidden by the delegation"},
			},
		},
		{
			name: "CNAME at a cut",
			in:   zoneHead + "  sub:\n    - ns: ns1\n    - cname: www\n",
			want: []wantErr{
				{9, "records.sub[0].ns", "NS cannot sit beside the CNAME at line 10"},
				{10, "records.sub[1].cname", "CNAME at sub.example.test. is hidden by the delegation"},
			},
		},

		// Several errors in one file, all reported.
		{
			name: "several decode errors",
			in: "origin: example.test.\n" +
				"ttl: never\n" + // 2
				"colour: blue\n" + // 3
				"records:\n" +
				"  \"@\":\n" +
				"    - soa: ns1 hostmaster 1 7200 3600 1209600 300\n" +
				"    - ns: ns1\n" +
				"  www:\n" +
				"    - a: 192.0.2.300\n" + // 9
				"    - { a: 192.0.2.1, aaaa: \"::1\" }\n" + // 10
				"    - bogus: 1\n" + // 11
				"  elsewhere.test.:\n" + // 12
				"    - a: 192.0.2.1\n",
			want: []wantErr{
				{2, "ttl", "whole number"},
				{3, "colour", "unknown key"},
				{9, "records.www[0].a", "bad A data"},
				{10, "records.www[1].aaaa", "one record per entry"},
				{11, "records.www[2].bogus", "unknown key"},
				{12, "records.elsewhere.test.", "outside the zone"},
			},
		},
		{
			name: "several zone-level errors",
			in: "origin: example.test.\nrecords:\n" +
				"  www:\n" +
				"    - cname: web\n" + // 4
				"    - a: 192.0.2.1\n" + // 5
				"  key:\n" +
				"    - ds: " + ds + "\n" + // 7
				"  old:\n" +
				"    - dname: new.example.\n", // 9
			want: []wantErr{
				{0, "records.@.soa", "missing"},
				{0, "records.@.ns", "missing"},
				{5, "records.www[1].a", "beside the CNAME at line 4"},
				{7, "records.key[0].ds", "DS belongs only at a delegation"},
				{9, "records.old[0].dname", "DNAME"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z, err := parseNoPanic(t, parseTestFile, []byte(tt.in))
			if z != nil {
				t.Errorf("got a zone with %d records; want none", z.Records())
			}
			checkErrors(t, err, tt.want)
		})
	}
}

// nodeRRStrings lists the records at owner in the zone, RRset by RRset in file
// order.
func nodeRRStrings(z *Zone, owner string) []string {
	n := z.Node(owner)
	if n == nil {
		return nil
	}
	var out []string
	for _, set := range n.RRsets() {
		for _, rr := range set.RRs {
			out = append(out, rr.String())
		}
	}
	return out
}

// sameWire reports whether a and b are the same record on the wire.
func sameWire(t *testing.T, a, b dns.RR) bool {
	t.Helper()
	pack := func(rr dns.RR) []byte {
		buf := make([]byte, dns.MaxMsgSize)
		n, err := dns.PackRR(rr, buf, 0, nil, false)
		if err != nil {
			t.Errorf("PackRR(%v): %v", rr, err)
			return nil
		}
		return buf[:n]
	}
	return string(pack(a)) == string(pack(b))
}

func TestParseFileRecords(t *testing.T) {
	long := strings.Repeat("x", 300)
	tests := []struct {
		name  string
		body  string // appended to zoneHead
		ttl   string // top-level ttl line, if any
		owner string
		want  []string
	}{
		{
			name: "A", body: "  www:\n    - a: 192.0.2.1\n",
			owner: "www.example.test.", want: []string{"www.example.test.\t3600\tIN\tA\t192.0.2.1"},
		},
		{
			name: "AAAA", body: "  www:\n    - aaaa: 2001:db8::1\n",
			owner: "www.example.test.", want: []string{"www.example.test.\t3600\tIN\tAAAA\t2001:db8::1"},
		},
		{
			name: "CNAME relative", body: "  alias:\n    - cname: www\n",
			owner: "alias.example.test.", want: []string{"alias.example.test.\t3600\tIN\tCNAME\twww.example.test."},
		},
		{
			name: "CNAME absolute", body: "  alias:\n    - cname: www.other.test.\n",
			owner: "alias.example.test.", want: []string{"alias.example.test.\t3600\tIN\tCNAME\twww.other.test."},
		},
		{
			name: "names in RDATA lowercased", body: "  alias:\n    - cname: WWW.Other.TEST.\n  www:\n    - mx: 10 MAIL\n    - srv: 1 2 3 Sip\n",
			owner: "www.example.test.", want: []string{
				"www.example.test.\t3600\tIN\tMX\t10 mail.example.test.",
				"www.example.test.\t3600\tIN\tSRV\t1 2 3 sip.example.test.",
			},
		},
		{
			name: "CNAME target lowercased", body: "  alias:\n    - cname: WWW.Other.TEST.\n",
			owner: "alias.example.test.", want: []string{"alias.example.test.\t3600\tIN\tCNAME\twww.other.test."},
		},
		{
			name: "CNAME to @", body: "  alias:\n    - cname: \"@\"\n",
			owner: "alias.example.test.", want: []string{"alias.example.test.\t3600\tIN\tCNAME\texample.test."},
		},
		{
			name: "MX", body: "  www:\n    - mx: 10 mail\n    - mx: 20 mx.other.test.\n",
			owner: "www.example.test.", want: []string{
				"www.example.test.\t3600\tIN\tMX\t10 mail.example.test.",
				"www.example.test.\t3600\tIN\tMX\t20 mx.other.test.",
			},
		},
		{
			name: "NS at a cut with DS", body: "  sub:\n    - ns: ns.sub\n    - ns: ns.other.test.\n" +
				"    - ds: 12345 13 2 6b5f0f3c2a4c2d8d7a2b6e1e0a3f1c9d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39\n",
			owner: "sub.example.test.", want: []string{
				"sub.example.test.\t3600\tIN\tNS\tns.sub.example.test.",
				"sub.example.test.\t3600\tIN\tNS\tns.other.test.",
				"sub.example.test.\t3600\tIN\tDS\t12345 13 2 6B5F0F3C2A4C2D8D7A2B6E1E0A3F1C9D8E7B6A5F4E3D2C1B0A9F8E7D6C5B4A39",
			},
		},
		{
			name: "TXT plain string with spaces is one string", body: "  www:\n    - txt: v=spf1 ip4:192.0.2.0/24 -all\n",
			owner: "www.example.test.", want: []string{"www.example.test.\t3600\tIN\tTXT\t\"v=spf1 ip4:192.0.2.0/24 -all\""},
		},
		{
			name: "TXT presentation format, two strings", body: "  www:\n    - txt: '\"part one\" \"part two\"'\n",
			owner: "www.example.test.", want: []string{"www.example.test.\t3600\tIN\tTXT\t\"part one\" \"part two\""},
		},
		{
			name: "TXT presentation format after leading space", body: "  www:\n    - txt: '  \"a\" \"b\"'\n",
			owner: "www.example.test.", want: []string{"www.example.test.\t3600\tIN\tTXT\t\"a\" \"b\""},
		},
		{
			name: "TXT explicit empty string", body: "  www:\n    - txt: '\"\"'\n",
			owner: "www.example.test.", want: []string{"www.example.test.\t3600\tIN\tTXT\t\"\""},
		},
		{
			name: "TXT embedded quote and backslash escaped", body: "  www:\n    - txt: 'say \"hi\" C:\\dir'\n",
			owner: "www.example.test.", want: []string{`www.example.test.` + "\t3600\tIN\tTXT\t" + `"say \"hi\" C:\\dir"`},
		},
		{
			name: "TXT semicolon is data, not a comment", body: "  www:\n    - txt: a; b\n",
			owner: "www.example.test.", want: []string{"www.example.test.\t3600\tIN\tTXT\t\"a; b\""},
		},
		{
			name: "TXT longer than 255 split", body: "  www:\n    - txt: " + long + "\n",
			owner: "www.example.test.", want: []string{
				"www.example.test.\t3600\tIN\tTXT\t\"" + long[:255] + "\" \"" + long[255:] + "\"",
			},
		},
		{
			name: "SRV", body: "  _sip._udp:\n    - srv: 10 60 5060 sip\n",
			owner: "_sip._udp.example.test.", want: []string{"_sip._udp.example.test.\t3600\tIN\tSRV\t10 60 5060 sip.example.test."},
		},
		{
			name: "CAA", body: "  www:\n    - caa: 0 issue \"letsencrypt.org\"\n    - caa: 128 iodef \"mailto:sec@example.test\"\n",
			owner: "www.example.test.", want: []string{
				"www.example.test.\t3600\tIN\tCAA\t0 issue \"letsencrypt.org\"",
				"www.example.test.\t3600\tIN\tCAA\t128 iodef \"mailto:sec@example.test\"",
			},
		},
		{
			name: "PTR", body: "  \"1\":\n    - ptr: host\n",
			owner: "1.example.test.", want: []string{"1.example.test.\t3600\tIN\tPTR\thost.example.test."},
		},
		{
			name: "NAPTR", body: "  www:\n    - naptr: 100 10 \"S\" \"SIP+D2U\" \"\" _sip._udp\n",
			owner: "www.example.test.", want: []string{"www.example.test.\t3600\tIN\tNAPTR\t100 10 \"S\" \"SIP+D2U\" \"\" _sip._udp.example.test."},
		},
		{
			name: "SSHFP", body: "  www:\n    - sshfp: 4 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
			owner: "www.example.test.", want: []string{"www.example.test.\t3600\tIN\tSSHFP\t4 2 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"},
		},
		{
			name: "TLSA", body: "  _443._tcp.www:\n    - tlsa: 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
			owner: "_443._tcp.www.example.test.", want: []string{"_443._tcp.www.example.test.\t3600\tIN\tTLSA\t3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
		},
		{
			name: "HTTPS", body: "  www:\n    - https: 1 . alpn=h2,h3 ipv4hint=192.0.2.1\n",
			owner: "www.example.test.", want: []string{"www.example.test.\t3600\tIN\tHTTPS\t1 . alpn=\"h2,h3\" ipv4hint=\"192.0.2.1\""},
		},
		{
			name: "SVCB relative target", body: "  _dns:\n    - svcb: 1 svc port=8443\n    - svcb: 2 svc2.other.test. port=853\n",
			owner: "_dns.example.test.", want: []string{
				"_dns.example.test.\t3600\tIN\tSVCB\t1 svc.example.test. port=\"8443\"",
				"_dns.example.test.\t3600\tIN\tSVCB\t2 svc2.other.test. port=\"853\"",
			},
		},
		{
			name: "absolute owner name", body: "  mail.example.test.:\n    - a: 192.0.2.25\n",
			owner: "mail.example.test.", want: []string{"mail.example.test.\t3600\tIN\tA\t192.0.2.25"},
		},
		{
			name: "owner names lowercased", body: "  WwW.Sub2:\n    - a: 192.0.2.1\n  MAIL.EXAMPLE.TEST.:\n    - a: 192.0.2.2\n",
			owner: "www.sub2.example.test.", want: []string{"www.sub2.example.test.\t3600\tIN\tA\t192.0.2.1"},
		},
		{
			name: "type keys case-insensitive", body: "  www:\n    - A: 192.0.2.1\n    - Aaaa: 2001:db8::1\n    - { TXT: hi, TTL: 3600 }\n",
			owner: "www.example.test.", want: []string{
				"www.example.test.\t3600\tIN\tA\t192.0.2.1",
				"www.example.test.\t3600\tIN\tAAAA\t2001:db8::1",
				"www.example.test.\t3600\tIN\tTXT\t\"hi\"",
			},
		},
		{
			name: "per-entry ttl, flow and block", body: "  www:\n    - { a: 192.0.2.1, ttl: 60 }\n    - a: 192.0.2.2\n      ttl: 60\n    - { aaaa: \"2001:db8::1\", ttl: 0 }\n",
			owner: "www.example.test.", want: []string{
				"www.example.test.\t60\tIN\tA\t192.0.2.1",
				"www.example.test.\t60\tIN\tA\t192.0.2.2",
				"www.example.test.\t0\tIN\tAAAA\t2001:db8::1",
			},
		},
		{
			name: "file ttl default and largest ttl", ttl: "ttl: 2147483647\n", body: "  www:\n    - a: 192.0.2.1\n",
			owner: "www.example.test.", want: []string{"www.example.test.\t2147483647\tIN\tA\t192.0.2.1"},
		},
		{
			name: "wildcard owner", body: "  \"*.wild\":\n    - txt: wildcard answer\n",
			owner: "*.wild.example.test.", want: []string{"*.wild.example.test.\t3600\tIN\tTXT\t\"wildcard answer\""},
		},
		{
			name: "comment after rdata", body: "  www:\n    - a: 192.0.2.1 # a comment\n",
			owner: "www.example.test.", want: []string{"www.example.test.\t3600\tIN\tA\t192.0.2.1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z, err := parseNoPanic(t, parseTestFile, []byte(tt.ttl+zoneHead+tt.body))
			if err != nil {
				t.Fatalf("ParseFile: %v", err)
			}
			got := nodeRRStrings(z, tt.owner)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("records at %s:\n got %q\nwant %q", tt.owner, got, tt.want)
			}
			// The string form parses back to the same record.
			n := z.Node(tt.owner)
			for _, set := range n.RRsets() {
				for _, rr := range set.RRs {
					back, err := dns.NewRR(rr.String())
					if err != nil {
						t.Errorf("NewRR(%q): %v", rr.String(), err)
						continue
					}
					if !sameWire(t, back, rr) {
						t.Errorf("round trip of %q gave %q", rr.String(), back.String())
					}
				}
			}
		})
	}
}

func TestParseFileSOA(t *testing.T) {
	const (
		apex = "origin: example.test.\nttl: 600\nrecords:\n  \"@\":\n"
		ns   = "    - ns: ns1\n"
	)
	tests := []struct {
		name string
		soa  string // the SOA entry
		want string // the SOA with its serial replaced by SERIAL when auto
		auto bool
	}{
		{
			name: "short form",
			soa:  "    - soa: ns1 hostmaster 2026112201 7200 3600 1209600 300\n",
			want: "example.test.\t600\tIN\tSOA\tns1.example.test. hostmaster.example.test. 2026112201 7200 3600 1209600 300",
		},
		{
			name: "short form absolute names, own ttl",
			soa:  "    - { soa: ns1.other.test. admin.other.test. 7 1 2 3 4, ttl: 60 }\n",
			want: "example.test.\t60\tIN\tSOA\tns1.other.test. admin.other.test. 7 1 2 3 4",
		},
		{
			name: "short form with a comment and parentheses",
			soa:  "    - soa: ns1 hostmaster ( 2026112201 7200 3600 1209600 300 ) ; from the old master file\n",
			want: "example.test.\t600\tIN\tSOA\tns1.example.test. hostmaster.example.test. 2026112201 7200 3600 1209600 300",
		},
		{
			name: "short form auto serial",
			soa:  "    - soa: ns1 hostmaster auto 7200 3600 1209600 300\n",
			want: "example.test.\t600\tIN\tSOA\tns1.example.test. hostmaster.example.test. SERIAL 7200 3600 1209600 300",
			auto: true,
		},
		{
			name: "short form AUTO in upper case",
			soa:  "    - soa: ns1 hostmaster AUTO 7200 3600 1209600 300\n",
			want: "example.test.\t600\tIN\tSOA\tns1.example.test. hostmaster.example.test. SERIAL 7200 3600 1209600 300",
			auto: true,
		},
		{
			name: "long form with defaults",
			soa:  "    - soa: { mname: ns1, rname: hostmaster }\n",
			want: "example.test.\t600\tIN\tSOA\tns1.example.test. hostmaster.example.test. SERIAL 7200 3600 1209600 300",
			auto: true,
		},
		{
			name: "long form auto serial",
			soa:  "    - soa:\n        mname: ns1\n        rname: hostmaster\n        serial: auto\n        minimum: 60\n",
			want: "example.test.\t600\tIN\tSOA\tns1.example.test. hostmaster.example.test. SERIAL 7200 3600 1209600 60",
			auto: true,
		},
		{
			name: "long form every field, keys case-insensitive",
			soa: "    - soa:\n        MName: ns1.example.test.\n        rname: hostmaster\n        serial: 42\n" +
				"        refresh: 1\n        retry: 2\n        expire: 3\n        minimum: 4\n",
			want: "example.test.\t600\tIN\tSOA\tns1.example.test. hostmaster.example.test. 42 1 2 3 4",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z, err := parseNoPanic(t, parseTestFile, []byte(apex+tt.soa+ns))
			if err != nil {
				t.Fatalf("ParseFile: %v", err)
			}
			want := tt.want
			if tt.auto {
				if z.Serial() == 0 {
					t.Errorf("auto serial left at 0")
				}
				want = strings.Replace(want, "SERIAL", fmt.Sprint(z.Serial()), 1)
			}
			if got := z.SOA().String(); got != want {
				t.Errorf("SOA\n got %q\nwant %q", got, want)
			}
			set := z.Apex().RRset(dns.TypeSOA)
			if set == nil || len(set.RRs) != 1 || set.RRs[0].String() != want {
				t.Errorf("apex SOA RRset %v does not hold the zone's SOA %q", set, want)
			}
		})
	}
}

// TestParseFileRootWildcard is a zone for the root with a wildcard directly
// below it: the wildcard's parent is ".", not "".
func TestParseFileRootWildcard(t *testing.T) {
	in := "origin: .\nrecords:\n  \"@\":\n    - soa: a.root-servers.test. hostmaster.test. 1 2 3 4 5\n" +
		"    - ns: a.root-servers.test.\n  \"*\":\n    - txt: everything\n"
	z, err := parseNoPanic(t, "root.yaml", []byte(in))
	if err != nil {
		t.Fatalf("ParseFile: %v", err)
	}
	if m := z.Lookup("anything.", dns.TypeTXT); m.Kind != WildcardMatch || m.Node != z.Node("*.") {
		t.Errorf("Lookup(anything.) = %v %v; want WildcardMatch at *.", m.Kind, m.Node)
	}
}

// TestRepeatedKeys checks that every mapping of a zone file rejects a key
// given twice, with the line of both (issue 12, defect 4): YAML decoders
// commonly keep the last value, which silently changes routing.
func TestRepeatedKeys(t *testing.T) {
	const geo = zoneHead + "  www:\n    - geo:\n"
	for _, tc := range []struct {
		name string
		in   string
		want []wantErr
	}{
		{"top level", "ttl: 60\n" + zoneHead + "ttl: 120\n",
			[]wantErr{{9, "ttl", "repeated key (first at line 1)"}}},
		{"owner", zoneHead + "  www:\n    - a: 192.0.2.1\n  www:\n    - a: 192.0.2.2\n",
			[]wantErr{{10, "records.www", "repeated key (first at line 8)"}}},
		{"ttl in a record entry", zoneHead + "  www:\n    - { a: 192.0.2.1, ttl: 60, ttl: 30 }\n",
			[]wantErr{{9, "records.www[0].ttl", "repeated key (first at line 9)"}}},
		{"type in a record entry", zoneHead + "  www:\n    - { a: 192.0.2.1, A: 192.0.2.2 }\n",
			[]wantErr{{9, "records.www[0].A", "repeated key (first at line 9)"}}},
		{"SOA mapping", "origin: example.test.\nrecords:\n  \"@\":\n    - soa: { mname: ns1, rname: hostmaster, mname: ns2 }\n    - ns: ns1\n",
			[]wantErr{{4, "records.@[0].soa.mname", "repeated key (first at line 4)"}}},
		{"geo record", geo + "        ttl: 30\n        ttl: 60\n        targets: { fra: { a: 192.0.2.1 } }\n",
			[]wantErr{{11, "records.www[0].geo.ttl", "repeated key (first at line 10)"}}},
		{"geo targets", geo + "        targets:\n          fra: { a: 192.0.2.1 }\n          fra: { a: 192.0.2.2 }\n",
			[]wantErr{{12, "records.www[0].geo.targets.fra", "repeated key (first at line 11)"}}},
		{"target state", geo + "        targets:\n          fra: { a: 192.0.2.1, state: down, state: active }\n",
			[]wantErr{{11, "records.www[0].geo.targets.fra.state", "repeated key (first at line 11)"}}},
		{"target addresses", geo + "        targets:\n          fra:\n            a: 192.0.2.1\n            a: 192.0.2.2\n",
			[]wantErr{{13, "records.www[0].geo.targets.fra.a", "repeated key (first at line 12)"}}},
		{"rule only", geo + "        targets: { fra: { a: 192.0.2.1 }, iad: { a: 192.0.2.2 } }\n        rules:\n          - { country: DE, only: fra, only: iad }\n",
			[]wantErr{{12, "records.www[0].geo.rules[0].only", "repeated key (first at line 12)"}}},
		{"target probe", geo + "        targets:\n          fra: { a: 192.0.2.1, probe: { tcp: \"192.0.2.1:1\", rise: 1, rise: 2 } }\n",
			[]wantErr{{11, "records.www[0].geo.targets.fra.probe.rise", "repeated key (first at line 11)"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFile(parseTestFile, []byte(tc.in), testPoPs(t))
			checkErrors(t, err, tc.want)
		})
	}
}

// TestErrorsInFileOrder checks that an operator reads the problems of a
// file top to bottom, though a walk reports a repeated key only after the
// values it handed on.
func TestErrorsInFileOrder(t *testing.T) {
	_, err := ParseFile(parseTestFile, geoZone(`  www:
    - geo:
        targets:
          fra:
            a: 192.0.2.1
            a: 192.0.2.2
            probe: { tcp: nowhere }
`), testPoPs(t))
	var lines []int
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error %v", err)
	}
	for _, e := range list {
		lines = append(lines, e.Line)
	}
	if fmt.Sprint(lines) != "[13 14]" {
		t.Errorf("errors at lines %v, want [13 14]:\n%v", lines, err)
	}
}

// TestAliasesAndMerges checks that anchors, aliases and merge keys mean
// in a zone file what YAML says they mean, keys written beside a merge
// winning over merged ones.
func TestAliasesAndMerges(t *testing.T) {
	z, err := ParseFile(parseTestFile, []byte(`origin: example.test.
records:
  "@":
    - soa: ns1 hostmaster 1 7200 3600 1209600 300
    - ns: ns1
  ns1:
    - a: &addr 192.0.2.53
  www:
    - a: *addr
  geo:
    - geo:
        targets:
          fra: &t { a: 192.0.2.1, state: drain }
          iad: { <<: *t, state: active }
`), testPoPs(t))
	if err != nil {
		t.Fatal(err)
	}
	if set := z.Lookup("www.example.test.", dns.TypeA).Node.RRset(dns.TypeA); set == nil || set.RRs[0].(*dns.A).A.String() != "192.0.2.53" {
		t.Errorf("www A %v, want the aliased 192.0.2.53", set)
	}
	g := z.Geos()[0]
	if len(g.Targets) != 2 || g.Targets[0].State != pops.Drain || g.Targets[1].State != pops.Active || g.Targets[1].A[0].(*dns.A).A.String() != "192.0.2.1" {
		t.Errorf("targets %+v: want fra drained and iad active with fra's address", g.Targets)
	}
}
