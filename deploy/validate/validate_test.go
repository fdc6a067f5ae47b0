package validate

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const (
	repo      = "../.."
	manifests = "../kubernetes"
	chart     = "../helm/popdns"
)

// tool finds a program the tests need: from the environment variable env,
// else on PATH. Without it a test skips, but fails under POPDNS_CI, where
// .ci/run installs it.
func tool(t *testing.T, env, name string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("POPDNS_CI") != "" {
		t.Fatalf("%s not found (set %s or put it on PATH); .ci/run's deploy step installs it", name, env)
	}
	t.Skipf("%s not found (set %s or put it on PATH)", name, env)
	return ""
}

var (
	popdnsOnce sync.Once
	popdnsPath string
	popdnsErr  error
	popdnsDir  string
)

// popdnsBinary builds popdns once for every test, with the Dockerfile's
// own build line (TestDockerfileBuildLine checks that line).
func popdnsBinary(t *testing.T) string {
	t.Helper()
	popdnsOnce.Do(func() {
		popdnsDir, popdnsErr = os.MkdirTemp("", "popdns-validate-")
		if popdnsErr != nil {
			return
		}
		popdnsPath, popdnsErr = BuildWithDockerfileLine(filepath.Join(repo, "Dockerfile"), repo, popdnsDir, "k8s-validate")
	})
	if popdnsErr != nil {
		t.Fatal(popdnsErr)
	}
	return popdnsPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if popdnsDir != "" {
		os.RemoveAll(popdnsDir)
	}
	os.Exit(code)
}

// validate decodes a rendered stream, checks it, and runs popdns check on
// its configuration and zones.
func validate(t *testing.T, source string, rendered []byte) {
	t.Helper()
	objs, err := Decode(source, rendered)
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(objs); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.Kind]++
	}
	t.Logf("%s: %d objects valid %v", source, len(objs), kinds)
	out, err := PopdnsCheck(popdnsBinary(t), t.TempDir(), filepath.Join(repo, "testdata/geo/city.mmdb"), filepath.Join(repo, "testdata/geo/asn.mmdb"), objs)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: popdns check: %s", source, strings.TrimSpace(string(out)))
}

func TestKustomize(t *testing.T) {
	rendered, err := Kustomize(manifests)
	if err != nil {
		t.Fatal(err)
	}
	validate(t, "kustomize build deploy/kubernetes", rendered)
}

// helmValues are the values files the chart is checked with, besides its
// defaults.
var helmValues = []string{
	"testdata/values-daemonset-cluster.yaml",
	"testdata/values-minimal.yaml",
	"testdata/values-geoipupdate-sidecar.yaml",
	"testdata/values-per-protocol.yaml",
}

func TestHelm(t *testing.T) {
	helm := tool(t, "HELM", "helm")
	for _, values := range append([]string{""}, helmValues...) {
		name := "defaults"
		args := []string{}
		if values != "" {
			name = filepath.Base(values)
			args = []string{"-f", values}
		}
		t.Run(name, func(t *testing.T) {
			out, err := Helm(helm, append([]string{"lint", "--strict", chart}, args...)...)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("helm lint --strict %v: %s", args, lastLine(out))
			rendered, err := Helm(helm, append([]string{"template", "popdns", chart, "--namespace", "dns"}, args...)...)
			if err != nil {
				t.Fatal(err)
			}
			validate(t, "helm template "+name, rendered)
			// NET_BIND_SERVICE is added only for the image's file
			// capability or a port below 1024.
			objs, _ := Decode(name, rendered)
			for _, w := range Workloads(objs) {
				for _, c := range w.Pod.Spec.Containers {
					added := c.SecurityContext != nil && c.SecurityContext.Capabilities != nil && len(c.SecurityContext.Capabilities.Add) > 0
					if c.Name == "popdns" && added != (name != "values-minimal.yaml") {
						t.Errorf("%s: container popdns adds %v", name, c.SecurityContext.Capabilities.Add)
					}
				}
			}
		})
	}
}

// TestHelmRejectsBadValues: values.schema.json stops a mistyped value
// before anything is rendered.
func TestHelmRejectsBadValues(t *testing.T) {
	helm := tool(t, "HELM", "helm")
	for _, set := range []string{
		"kind=StatefulSet",
		"dnsPort=70000",
		"geoip.mode=maxmind",
		"replicaz=3",
		"cluster.health=most",
		"config.listen={:53}",
	} {
		t.Run(set, func(t *testing.T) {
			out, err := Helm(helm, "template", "popdns", chart, "--set", set)
			if err == nil {
				t.Fatalf("helm template --set %s succeeded:\n%.300s", set, out)
			}
			if !strings.Contains(err.Error(), "values don't meet the specifications of the schema") {
				t.Fatalf("helm template --set %s failed, but not on the schema: %v", set, err)
			}
		})
	}
}

// TestHelmAdminNeedsCluster: the admin API on more than one pod needs
// cluster, or a drain reaches one pod of several; one pod alone may have it.
func TestHelmAdminNeedsCluster(t *testing.T) {
	helm := tool(t, "HELM", "helm")
	for _, tc := range []struct {
		sets []string
		ok   bool
	}{
		{[]string{"tokens.admin=true"}, false},
		{[]string{"tokens.admin=true", "kind=DaemonSet", "pdb.enabled=false"}, false},
		{[]string{"tokens.admin=true", "replicas=1"}, true}, // and no budget
		{[]string{"tokens.admin=true", "cluster.enabled=true", "cluster.nats={nats://nats:4222}"}, true},
	} {
		t.Run(strings.Join(tc.sets, ","), func(t *testing.T) {
			args := []string{"template", "popdns", chart}
			for _, s := range tc.sets {
				args = append(args, "--set", s)
			}
			out, err := Helm(helm, args...)
			switch {
			case tc.ok && err != nil:
				t.Fatal(err)
			case tc.ok:
				validate(t, "helm template --set "+strings.Join(tc.sets, ","), out)
			case err == nil:
				t.Fatalf("rendered:\n%.300s", out)
			case !strings.Contains(err.Error(), "tokens.admin needs cluster.enabled with more than one pod"):
				t.Fatalf("failed, but not on the admin API: %v", err)
			}
		})
	}
}

// TestHelmRollsOnlyForRestartKeys: the pod template changes (and helm
// upgrade rolls the pods, node by node for a DaemonSet) only for a
// popdns.yaml change that popdns cannot apply live.
func TestHelmRollsOnlyForRestartKeys(t *testing.T) {
	helm := tool(t, "HELM", "helm")
	annotation := func(sets ...string) string {
		t.Helper()
		args := []string{"template", "popdns", chart}
		for _, s := range sets {
			args = append(args, "--set", s)
		}
		out, err := Helm(helm, args...)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := Decode("helm template", out)
		if err != nil {
			t.Fatal(err)
		}
		ws := Workloads(objs)
		if len(ws) != 1 {
			t.Fatalf("%d workloads", len(ws))
		}
		return ws[0].Pod.Annotations["checksum/config-restart"]
	}
	base := annotation()
	if base == "" {
		t.Fatal("no checksum/config-restart annotation by default")
	}
	for _, tc := range []struct {
		set  string
		roll bool
	}{
		{"config.pops.fra.state=drain", false},
		{"config.probes.interval=10s", false},
		{"config.log.level=debug", false},
		{"config.zone_missing_grace=1h", false},
		{"zones.extra\\.test\\.yaml=origin: extra.test.", false},
		{"config.nsid=ns9", true},
		{"config.rate_limit.responses_per_second=50", true},
		{"config.probes.penalty_weight=2", true},
		{"config.cookies.enabled=false", true},
		{"listen={:53}", true},
		{"tokens.read=false", true},
	} {
		if got := annotation(tc.set); (got != base) != tc.roll {
			t.Errorf("--set %s: checksum %s (default %s), want a roll: %v", tc.set, got, base, tc.roll)
		}
	}
	if got := annotation("rollOnConfigChange=false", "config.nsid=ns9"); got != "" {
		t.Errorf("rollOnConfigChange=false: annotation %s", got)
	}
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// TestBrokenManifests feeds the plain manifests with one mistake each and
// expects the check to name it: a validator that passes everything would
// pass the good manifests too.
func TestBrokenManifests(t *testing.T) {
	good, err := Kustomize(manifests)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"unknown field", "image: ghcr.io/popdns/popdns:latest\n", "image: ghcr.io/popdns/popdns:latest\n        imagePulPolicy: Always\n", `Deployment popdns: error unmarshaling JSON: while decoding JSON: json: unknown field "imagePulPolicy"`},
		{"wrong type", "replicas: 3", "replicas: three", "cannot unmarshal"},
		{"unknown kind", "kind: PodDisruptionBudget", "kind: PodDisruptionBudjet", `kind "PodDisruptionBudjet"`},
		{"duplicate key", "  maxUnavailable: 1\n", "  maxUnavailable: 1\n  maxUnavailable: 2\n", "already set in map"},
		{"selector mismatch", "    metadata:\n      labels:\n        app.kubernetes.io/name: popdns\n    spec:", "    metadata:\n      labels:\n        app.kubernetes.io/name: popdnz\n    spec:", "selector does not match"},
		{"mount without volume", "- mountPath: /var/lib/popdns/state\n          name: state\n", "- mountPath: /var/lib/popdns/state\n          name: statee\n", "mounts volume statee"},
		{"liveness elsewhere", "livenessProbe:\n          failureThreshold: 3\n          httpGet:\n            path: /healthz", "livenessProbe:\n          failureThreshold: 3\n          httpGet:\n            path: /status", "livenessProbe asks /status"},
		{"startup on healthz", "startupProbe:\n          failureThreshold: 60\n          httpGet:\n            path: /readyz", "startupProbe:\n          failureThreshold: 60\n          httpGet:\n            path: /healthz", "startupProbe asks /healthz"},
		{"grace too short", "terminationGracePeriodSeconds: 45", "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds 30 is not more than the preStop sleep 30s plus shutdown_grace 5s"},
		{"grace too short for shutdown_grace", "format: json\n", "format: json\n    shutdown_grace: 20s\n", "plus shutdown_grace 20s"},
		{"short preStop behind a Local LB", "              seconds: 30", "              seconds: 5", "preStop sleep is 5s: at least 20s"},
		{"admin API on 3 pods without cluster", "# admin_token_file:", "admin_token_file:", "3 pods with the admin API (admin_token_file) but no cluster"},
		{"budget over one replica", "replicas: 3", "replicas: 1", "budget over Deployment popdns's 1 replica protects nothing"},
		{"budget allows none", "  maxUnavailable: 1\n  selector", "  minAvailable: 3\n  selector", "allows no pod of Deployment popdns's 3 down"},
		{"budget allows all", "  maxUnavailable: 1\n  selector", "  maxUnavailable: 100%\n  selector", "allows all 3 pods"},
		{"DNS over UDP only", "  - name: dns-tcp\n    port: 53\n    protocol: TCP\n    targetPort: dns-tcp\n", "", "DNS over TCP is served by no Service"},
		{"no readiness", "readinessProbe:", "xreadinessProbe:", "unknown field"},
		{"root allowed", "runAsNonRoot: true", "runAsNonRoot: false", "runAsNonRoot must be true"},
		{"writable root", "            - ALL\n          readOnlyRootFilesystem: true\n        startupProbe:", "            - ALL\n          readOnlyRootFilesystem: false\n        startupProbe:", "container popdns: readOnlyRootFilesystem"},
		{"extra capability", "- NET_BIND_SERVICE", "- SYS_ADMIN", "adds capability SYS_ADMIN"},
		{"service port", "targetPort: dns-tcp", "targetPort: dns", "targetPort dns/TCP"},
		{"missing configmap", "name: popdns-config\n", "name: popdns-conf\n", `ConfigMap "popdns-config" is not among`},
		{"budget on a DaemonSet",
			"kind: Deployment\nmetadata:\n  labels:\n    app.kubernetes.io/name: popdns\n    app.kubernetes.io/part-of: popdns\n  name: popdns\nspec:\n  replicas: 3\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: popdns\n  strategy:\n    rollingUpdate:\n      maxSurge: 1\n      maxUnavailable: 0\n    type: RollingUpdate\n",
			"kind: DaemonSet\nmetadata:\n  labels:\n    app.kubernetes.io/name: popdns\n    app.kubernetes.io/part-of: popdns\n  name: popdns\nspec:\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: popdns\n",
			"maxUnavailable on DaemonSet"},
		{"bad zone", "- a: 192.0.2.53", "- a: 192.0.2.300", "popdns check"},
		{"bad popdns.yaml", "format: json", "format: text", "popdns check"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(string(good), tc.old) {
				t.Fatalf("the manifests no longer contain %q: update the case", tc.old)
			}
			broken := []byte(strings.Replace(string(good), tc.old, tc.new, 1))
			err := checkAll(t, broken)
			if err == nil {
				t.Fatalf("no error for %s", tc.name)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error does not mention %q:\n%v", tc.want, err)
			}
		})
	}
}

func checkAll(t *testing.T, rendered []byte) error {
	objs, err := Decode("broken", rendered)
	if err != nil {
		return err
	}
	if err := Check(objs); err != nil {
		return err
	}
	_, err = PopdnsCheck(popdnsBinary(t), t.TempDir(), filepath.Join(repo, "testdata/geo/city.mmdb"), filepath.Join(repo, "testdata/geo/asn.mmdb"), objs)
	return err
}
