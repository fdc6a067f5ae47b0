package validate

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// TestGeoIPInitFailsSoft runs the geoipupdate init container's script with
// a stand-in for the image's entry.sh: when the download fails, the pod
// starts with databases an earlier pod left in the volume, and waits (the
// init container fails, and is retried) only when there are none, since
// popdns does not start without the databases popdns.yaml names.
func TestGeoIPInitFailsSoft(t *testing.T) {
	sh := tool(t, "SH", "sh")
	sources := map[string][]byte{}
	rendered, err := Kustomize(manifests)
	if err != nil {
		t.Fatal(err)
	}
	sources["kustomize"] = rendered
	if helm, err := exec.LookPath("helm"); err == nil || os.Getenv("HELM") != "" {
		if h := os.Getenv("HELM"); h != "" {
			helm = h
		}
		if sources["helm"], err = Helm(helm, "template", "popdns", chart); err != nil {
			t.Fatal(err)
		}
	}
	for source, rendered := range sources {
		objs, err := Decode(source, rendered)
		if err != nil {
			t.Fatal(err)
		}
		var init *corev1.Container
		for _, w := range Workloads(objs) {
			for i, c := range w.Pod.Spec.InitContainers {
				if c.Name == "geoipupdate" {
					init = &w.Pod.Spec.InitContainers[i]
				}
			}
		}
		if init == nil || len(init.Command) != 2 || init.Command[0] != "/bin/sh" || len(init.Args) != 1 {
			t.Fatalf("%s: no geoipupdate init container running a /bin/sh -c script", source)
		}
		env := map[string]string{}
		for _, e := range init.Env {
			env[e.Name] = e.Value
		}
		files := strings.Fields(env["POPDNS_GEOIP_FILES"])
		if len(files) != 2 {
			t.Fatalf("%s: POPDNS_GEOIP_FILES %q, want the City and ASN files", source, env["POPDNS_GEOIP_FILES"])
		}
		if !strings.Contains(init.Args[0], "/usr/bin/entry.sh") {
			t.Fatalf("%s: the script does not run the image's /usr/bin/entry.sh", source)
		}
		for _, tc := range []struct {
			name     string
			download bool     // whether the stand-in entry.sh succeeds
			earlier  []string // files already in the volume
			wantOK   bool
		}{
			{"download", true, nil, true},
			{"download fails, volume empty", false, nil, false},
			{"download fails, one database left", false, files[:1], false},
			{"download fails, both left", false, files, true},
		} {
			t.Run(source+"/"+tc.name, func(t *testing.T) {
				dir := t.TempDir()
				db := filepath.Join(dir, "geoip")
				if err := os.Mkdir(db, 0o755); err != nil {
					t.Fatal(err)
				}
				for _, f := range tc.earlier {
					if err := os.WriteFile(filepath.Join(db, f), []byte("mmdb"), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				entry := filepath.Join(dir, "entry.sh")
				body := "#!/bin/sh\necho MaxMind unreachable >&2\nexit 1\n"
				if tc.download {
					body = "#!/bin/sh\nfor f in $POPDNS_GEOIP_FILES; do echo mmdb > \"$GEOIPUPDATE_DB_DIR/$f\"; done\n"
				}
				if err := os.WriteFile(entry, []byte(body), 0o755); err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				cmd := exec.CommandContext(ctx, sh, "-c", strings.ReplaceAll(init.Args[0], "/usr/bin/entry.sh", entry))
				cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "GEOIPUPDATE_DB_DIR=" + db, "POPDNS_GEOIP_FILES=" + env["POPDNS_GEOIP_FILES"]}
				out, err := cmd.CombinedOutput()
				if (err == nil) != tc.wantOK {
					t.Fatalf("exit %v, want success %v; output:\n%s", err, tc.wantOK, out)
				}
				t.Logf("exit %v: %s", err, strings.TrimSpace(string(out)))
			})
		}
	}
}

// TestGeoIPSidecarSurvivesFailures runs the geoipupdate sidecar's loop
// with a stand-in entry.sh that always fails: the loop must go on to the
// next turn rather than exit, since a restarting container takes the pod
// out of the Service.
func TestGeoIPSidecarSurvivesFailures(t *testing.T) {
	helm := tool(t, "HELM", "helm")
	sh := tool(t, "SH", "sh")
	rendered, err := Helm(helm, "template", "popdns", chart, "-f", "testdata/values-geoipupdate-sidecar.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Decode("helm template", rendered)
	if err != nil {
		t.Fatal(err)
	}
	var script string
	for _, w := range Workloads(objs) {
		for _, c := range w.Pod.Spec.Containers {
			if c.Name == "geoipupdate" && len(c.Args) == 1 {
				script = c.Args[0]
			}
		}
	}
	if !strings.Contains(script, "/usr/bin/entry.sh") {
		t.Fatalf("no geoipupdate sidecar running /usr/bin/entry.sh in a script: %q", script)
	}
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	entry := filepath.Join(dir, "entry.sh")
	if err := os.WriteFile(entry, []byte("#!/bin/sh\necho x >> "+calls+"\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sh, "-c", strings.ReplaceAll(script, "/usr/bin/entry.sh", entry))
	// 0 hours: no pause between turns.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "POPDNS_GEOIP_HOURS=0"}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			t.Fatalf("the loop ended (%v) after a failed update", err)
		case <-ctx.Done():
			t.Fatal("entry.sh was not run 3 times in 10 s")
		case <-tick.C:
		}
		if b, _ := os.ReadFile(calls); strings.Count(string(b), "x") >= 3 {
			break
		}
	}
	cmd.Process.Kill()
	<-exited
}
