//go:build slow

package status

import (
	"bytes"
	"context"
	"fmt"
	"image"
	_ "image/png" // the screenshot
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The browser test: Chromium loads the page from a local server, under the
// page's own CSP, takes a screenshot and reports what its console says.

// chromiumPath finds the browser. A missing browser skips the test on a
// workstation but fails it in CI, which installs one on purpose.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium found (chromium, chromium-browser or google-chrome in $PATH); " +
		"install it (Debian: apt-get install chromium) to test the status page in a browser"
	if os.Getenv("POPDNS_CI") != "" {
		t.Fatal(msg + "; POPDNS_CI is set (.ci/run installs Chromium), so this is a failure")
	}
	t.Skip(msg)
	return ""
}

type chromiumRun struct {
	stdout, stderr string
	err            error
}

// runChromium runs one headless Chromium to completion, or until ctx ends.
// Chromium starts helper processes (zygote, GPU, renderers); it gets a
// process group of its own so that all of them are killed together, and
// none outlives the test.
func runChromium(ctx context.Context, bin, profile string, args ...string) chromiumRun {
	args = append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
		"--disable-component-update", "--disable-dev-shm-usage", "--hide-scrollbars",
		"--force-device-scale-factor=1", "--user-data-dir=" + profile,
		"--enable-logging=stderr", "--v=0",
	}, args...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("chromium on %s: %w", args[len(args)-1], ctx.Err())
	}
	return chromiumRun{stdout.String(), stderr.String(), err}
}

// consoleLine matches what Chromium logs for a console message with
// --enable-logging: "INFO:CONSOLE:1]" in recent versions, "CONSOLE(1)]"
// in older ones.
var consoleLine = regexp.MustCompile(`CONSOLE[:(]`)

// consoleProblems picks from Chromium's log the lines a page's visitor
// would see as trouble in the developer console. The page runs no script,
// so any console message at all is one.
func consoleProblems(stderr string) []string {
	var bad []string
	for l := range strings.Lines(stderr) {
		if consoleLine.MatchString(l) || strings.Contains(l, "Content Security Policy") || strings.Contains(l, "Uncaught") {
			bad = append(bad, strings.TrimSpace(l))
		}
	}
	return bad
}

func TestStatusPageInChromium(t *testing.T) {
	bin := chromiumPath(t)
	// The fleet's fixture draws everything the page has: the PoPs, the
	// fleet line and the overrides too.
	fixture := withTimeline(fleetPageFixture(time.Now()), time.Now())

	var mu sync.Mutex
	var stray []string // requests other than the page's: all of them escaped the CSP
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		WritePage(w, fixture, time.Now())
	})
	// The control page breaks the policy twice. If the browser's log does
	// not show it, the console check below proves nothing.
	mux.HandleFunc("GET /csp-control", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Security-Policy", PageCSP)
		fmt.Fprint(w, `<!doctype html><title>control</title><img src="/blocked.png"><script>console.error("ran")</script>`)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		stray = append(stray, r.Method+" "+r.URL.String())
		mu.Unlock()
		http.NotFound(w, r)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	shot := filepath.Join(dir, "statuspage.png")
	var shotRun, domRun, controlRun chromiumRun
	var wg sync.WaitGroup
	wg.Go(func() {
		shotRun = runChromium(ctx, bin, filepath.Join(dir, "profile-shot"),
			"--screenshot="+shot, "--window-size=1280,1000", srv.URL+"/")
	})
	wg.Go(func() {
		domRun = runChromium(ctx, bin, filepath.Join(dir, "profile-dom"), "--dump-dom", srv.URL+"/")
	})
	wg.Go(func() {
		controlRun = runChromium(ctx, bin, filepath.Join(dir, "profile-control"), "--dump-dom", srv.URL+"/csp-control")
	})
	wg.Wait()
	for name, r := range map[string]chromiumRun{"screenshot": shotRun, "dump-dom": domRun, "control": controlRun} {
		if r.err != nil {
			t.Fatalf("%s: chromium: %v\n%s", name, r.err, r.stderr)
		}
	}

	if got := consoleProblems(controlRun.stderr); len(got) < 2 {
		t.Errorf("the control page broke the CSP twice, but the console check found %q in\n%s", got, controlRun.stderr)
	}
	for name, r := range map[string]chromiumRun{"screenshot": shotRun, "dump-dom": domRun} {
		if bad := consoleProblems(r.stderr); len(bad) > 0 {
			t.Errorf("%s: the browser console reports:\n%s", name, strings.Join(bad, "\n"))
		}
	}
	mu.Lock()
	if len(stray) > 0 {
		t.Errorf("the page made requests beyond itself: %q", stray)
	}
	mu.Unlock()

	dom := domRun.stdout
	for _, p := range fixture.PoPs {
		if !strings.Contains(dom, `data-pop="`+p.Name+`"`) {
			t.Errorf("the browser's DOM has no map dot for %s", p.Name)
		}
	}
	if n := strings.Count(dom, `<circle class="dot `); n != len(fixture.PoPs) {
		t.Errorf("the browser's DOM has %d dots, want %d", n, len(fixture.PoPs))
	}
	for _, want := range []string{"NATS NOT CONNECTED", `<h2 id="overrides-title">`, `<td class="quorum">3/3 healthy</td>`,
		`<p class="banner geoip-stale" role="alert">GeoIP database GeoLite2-City.mmdb was built 2019-12-24`,
		`<h2 id="timeline-title">Timeline`, `<tr class="ev-error">`, `<span class="lvl warn">warn</span>`} {
		if !strings.Contains(dom, want) {
			t.Errorf("the browser's DOM lacks %s", want)
		}
	}

	checkScreenshot(t, shot)
	t.Logf("screenshot: %s", shot)
	if keep := os.Getenv("POPDNS_SCREENSHOT_DIR"); keep != "" {
		dst := filepath.Join(keep, "statuspage.png")
		if err := copyScreenshot(shot, dst); err != nil {
			t.Errorf("keeping the screenshot: %v", err)
		} else {
			t.Logf("screenshot kept as %s", dst)
		}
	} else {
		t.Log("set POPDNS_SCREENSHOT_DIR to keep it")
	}
}

// checkScreenshot makes sure the browser drew the page: the PNG decodes,
// has the window's size, shows the map's sea and the colour of every PoP
// state the fixture has.
func checkScreenshot(t *testing.T, file string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, format, err := image.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if format != "png" {
		t.Errorf("screenshot is %s, want png", format)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 1000 {
		t.Errorf("screenshot is %v, want 1280×1000", b.Size())
	}
	colours := map[[3]uint32]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 8, g >> 8, bl >> 8}]++
		}
	}
	if len(colours) < 32 {
		t.Errorf("screenshot has only %d colours: a blank page?", len(colours))
	}
	// The CSS colours, as in statuspage/status.html.
	for name, c := range map[string][3]uint32{
		"sea": {0xd4, 0xe5, 0xf3}, "up": {0x1f, 0x9d, 0x55}, "draining": {0xe5, 0x8a, 0x00},
		"unhealthy": {0xd9, 0x2d, 0x20}, "down": {0x5f, 0x6b, 0x7a},
	} {
		want := 20
		if name == "sea" {
			want = 100_000 // the map takes a good part of the window
		}
		if n := colours[c]; n < want {
			t.Errorf("screenshot has %d pixels of the %s colour, want at least %d", n, name, want)
		}
	}
}

func copyScreenshot(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}

// TestTrafficPageInChromium draws the demo of the traffic section and the
// catchment (trafficPageFixture: PoPs close together in Europe, traffic
// from many countries) in Chromium, under the page's CSP, and takes the
// screenshot the docs show: with POPDNS_UPDATE_SCREENSHOT=1 it is written
// to docs/img/status-page.png, else to a temporary directory.
func TestTrafficPageInChromium(t *testing.T) {
	bin := chromiumPath(t)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	fixture := trafficPageFixture(now)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) { WritePage(w, fixture, now) })
	var mu sync.Mutex
	var stray []string
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		stray = append(stray, r.Method+" "+r.URL.String())
		mu.Unlock()
		http.NotFound(w, r)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	shot := filepath.Join(dir, "status-page.png")
	const width, height = 1280, 1400
	var shotRun, domRun chromiumRun
	var wg sync.WaitGroup
	wg.Go(func() {
		shotRun = runChromium(ctx, bin, filepath.Join(dir, "profile-shot"),
			"--screenshot="+shot, fmt.Sprintf("--window-size=%d,%d", width, height), srv.URL+"/")
	})
	wg.Go(func() {
		domRun = runChromium(ctx, bin, filepath.Join(dir, "profile-dom"), "--dump-dom", srv.URL+"/")
	})
	wg.Wait()
	for name, r := range map[string]chromiumRun{"screenshot": shotRun, "dump-dom": domRun} {
		if r.err != nil {
			t.Fatalf("%s: chromium: %v\n%s", name, r.err, r.stderr)
		}
		if bad := consoleProblems(r.stderr); len(bad) > 0 {
			t.Errorf("%s: the browser console reports:\n%s", name, strings.Join(bad, "\n"))
		}
	}
	mu.Lock()
	if len(stray) > 0 {
		t.Errorf("the page made requests beyond itself: %q", stray)
	}
	mu.Unlock()

	dom := domRun.stdout
	for _, want := range []string{`<section class="traffic"`, `<svg class="inset"`, `data-country="DE"`, `data-country="BR"`, `<path class="flow"`} {
		if !strings.Contains(dom, want) {
			t.Errorf("the browser's DOM lacks %s", want)
		}
	}
	for _, name := range []string{"ams", "fra", "lhr", "cdg"} {
		// On the world map and in the inset.
		if n := strings.Count(dom, `data-pop="`+name+`"`); n != 2 {
			t.Errorf("the browser's DOM has %d dots for %s, want 2", n, name)
		}
	}

	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	img, format, err := image.Decode(f)
	f.Close()
	if err != nil || format != "png" {
		t.Fatalf("screenshot: %v (%s)", err, format)
	}
	if b := img.Bounds(); b.Dx() != width || b.Dy() != height {
		t.Errorf("screenshot is %v, want %d×%d", b.Size(), width, height)
	}
	// The PoPs' colours (popPalette) are drawn: swatches and share bars
	// of the busiest.
	colours := map[[3]uint32]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 8, g >> 8, bl >> 8}]++
		}
	}
	for _, name := range []string{"fra", "iad"} {
		i := slices.IndexFunc(fixture.PoPs, func(p PoP) bool { return p.Name == name })
		var c [3]uint32
		if _, err := fmt.Sscanf(popPalette[i], "#%02x%02x%02x", &c[0], &c[1], &c[2]); err != nil {
			t.Fatal(err)
		}
		if n := colours[c]; n < 50 {
			t.Errorf("screenshot has %d pixels of %s's colour %s, want at least 50", n, name, popPalette[i])
		}
	}
	if os.Getenv("POPDNS_UPDATE_SCREENSHOT") == "1" {
		dst := filepath.Join("..", "..", "docs", "img", "status-page.png")
		if err := copyScreenshot(shot, dst); err != nil {
			t.Fatalf("updating the docs' screenshot: %v", err)
		}
		t.Logf("wrote %s", dst)
	}
}
