package zones

import (
	"strings"
	"testing"
)

// TestErrorsInLineOrder: a file's problems come in the order of its lines,
// though they are found in passes (a CNAME beside other data was found
// after a TTL that differs within an RRset further down).
func TestErrorsInLineOrder(t *testing.T) {
	const zone = `origin: order.test.
records:
  "@":
    - soa: ns1 hostmaster 1 7200 3600 1209600 60
    - ns: ns1
  ns1:
    - a: 192.0.2.53
  alias:
    - cname: www
    - txt: beside the CNAME
  www:
    - a: 192.0.2.1
    - { a: 192.0.2.2, ttl: 60 }
`
	_, err := ParseFile("order.test.yaml", []byte(zone), nil)
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "order.test.yaml:10:") || !strings.HasPrefix(lines[1], "order.test.yaml:13:") {
		t.Errorf("errors not in line order:\n%v", err)
	}
}
