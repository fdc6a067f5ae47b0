//go:build slow

package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// testBinaryDrainsOnSIGTERM: queries the kernel holds for popdns when
// SIGTERM comes are answered, and it exits 0. popdns is stopped
// (SIGSTOP) while UDP queries queue in its socket and pipelined TCP
// queries on an open connection, then sent SIGTERM and continued, so that
// it finds them all unread when it learns it must stop. Before, it
// answered 6 of 2,885 queued UDP queries and dropped the pipelined ones.
func testBinaryDrainsOnSIGTERM(t *testing.T, bin string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-listen", "127.0.0.1:0", "-http", "off")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Signal(syscall.SIGCONT) // never leave it stopped
	lines := bufio.NewScanner(stderr)
	var serving string
	for lines.Scan() {
		if strings.Contains(lines.Text(), "popdns serving") {
			serving = lines.Text()
			break
		}
	}
	go io.Copy(io.Discard, stderr)
	m := regexp.MustCompile(`dns=\["([^"]+)"\]`).FindStringSubmatch(serving)
	if m == nil {
		t.Fatalf("no serving line with an address: %q", serving)
	}
	addr := m[1]

	pack := func(id uint16, class uint16) []byte {
		q := new(dns.Msg)
		q.SetQuestion("www.example.test.", dns.TypeA)
		q.Id, q.Question[0].Qclass = id, class
		p, err := q.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tcp, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	readTCP := func() (*dns.Msg, error) {
		tcp.SetReadDeadline(time.Now().Add(10 * time.Second))
		var n [2]byte
		if _, err := io.ReadFull(tcp, n[:]); err != nil {
			return nil, err
		}
		b := make([]byte, binary.BigEndian.Uint16(n[:]))
		if _, err := io.ReadFull(tcp, b); err != nil {
			return nil, err
		}
		r := new(dns.Msg)
		return r, r.Unpack(b)
	}
	first := pack(65000, dns.ClassINET)
	if _, err := tcp.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(first))), first...)); err != nil {
		t.Fatal(err)
	}
	if _, err := readTCP(); err != nil {
		t.Fatalf("first TCP query: %v", err)
	}
	udp, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()

	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	const nUDP, nTCP = 150, 500
	udpGot := make(chan int, 1)
	go func() {
		got := map[uint16]bool{}
		buf := make([]byte, 4096)
		udp.SetReadDeadline(time.Now().Add(15 * time.Second))
		for len(got) < nUDP {
			n, err := udp.Read(buf)
			if err != nil {
				break
			}
			r := new(dns.Msg)
			if r.Unpack(buf[:n]) == nil {
				got[r.Id] = true
			}
		}
		udpGot <- len(got)
	}()
	for i := range nUDP {
		class := uint16(dns.ClassINET)
		if i%5 == 4 {
			class = dns.ClassCHAOS // handed to the general path
		}
		if _, err := udp.Write(pack(uint16(i), class)); err != nil {
			t.Fatal(err)
		}
	}
	var batch []byte
	for i := range nTCP {
		p := pack(uint16(i), dns.ClassINET)
		batch = append(append(batch, byte(len(p)>>8), byte(len(p))), p...)
	}
	if _, err := tcp.Write(batch); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	tcpGot := 0
	for ; tcpGot < nTCP; tcpGot++ {
		r, err := readTCP()
		if err != nil || r.Id != uint16(tcpGot) {
			break
		}
	}
	if tcpGot != nTCP {
		t.Errorf("TCP: %d of %d pipelined queries answered", tcpGot, nTCP)
	}
	if n := <-udpGot; n != nUDP {
		t.Errorf("UDP: %d of %d queued queries answered", n, nUDP)
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) || ctx.Err() != nil {
		t.Fatalf("after SIGTERM: %v (context %v)", err, ctx.Err())
	}
}
