package validate

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Workload is a Deployment's or DaemonSet's name, selector and pod template.
type Workload struct {
	Source   string
	Name     string
	Selector *metav1.LabelSelector
	Pod      corev1.PodTemplateSpec
}

// Workloads lists the Deployments and DaemonSets among objs.
func Workloads(objs []Object) []Workload {
	var ws []Workload
	for _, o := range objs {
		switch {
		case o.Deployment != nil:
			ws = append(ws, Workload{o.Source, o.Name, o.Deployment.Spec.Selector, o.Deployment.Spec.Template})
		case o.DaemonSet != nil:
			ws = append(ws, Workload{o.Source, o.Name, o.DaemonSet.Spec.Selector, o.DaemonSet.Spec.Template})
		}
	}
	return ws
}

// Check makes the checks strict decoding cannot: that the objects fit
// together (selectors, volumes, ports, ConfigMaps) and that popdns runs
// as it must (probes, security context, resources). It returns every
// problem found, each naming its object.
func Check(objs []Object) error {
	var errs []error
	fail := func(src, kind, name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s %s: %s", src, kind, name, fmt.Sprintf(format, args...)))
	}
	ws := Workloads(objs)
	if len(ws) != 1 {
		errs = append(errs, fmt.Errorf("want exactly one Deployment or DaemonSet, got %d", len(ws)))
	}
	configMaps := map[string]bool{}
	for _, o := range objs {
		if o.ConfigMap != nil {
			configMaps[o.Name] = true
		}
	}
	accounts := map[string]bool{}
	for _, o := range objs {
		if o.ServiceAccount != nil {
			accounts[o.Name] = true
		}
	}
	for _, w := range ws {
		wfail := func(format string, args ...any) {
			fail(w.Source, "workload", w.Name, format, args...)
		}
		checkWorkload(w, configMaps, accounts, wfail)
		checkShutdown(w, objs, wfail)
		checkAdminAPI(w, podCount(objs, w), objs, wfail)
	}
	// DNS needs both UDP and TCP (a truncated answer is asked again over
	// TCP): split over Services or not, whatever serves one serves both.
	dnsProtocols := map[string]string{}
	for _, o := range objs {
		if o.Service == nil {
			continue
		}
		for _, p := range o.Service.Spec.Ports {
			if p.Port == 53 || strings.HasPrefix(p.TargetPort.StrVal, "dns-") {
				dnsProtocols[protocol(p.Protocol)] = o.Source + ": Service " + o.Name
			}
		}
	}
	if len(dnsProtocols) > 0 {
		for _, want := range []string{"UDP", "TCP"} {
			if _, ok := dnsProtocols[want]; !ok {
				errs = append(errs, fmt.Errorf("DNS over %s is served by no Service, though DNS over %s is", want, map[string]string{"UDP": "TCP", "TCP": "UDP"}[want]))
			}
		}
	}
	for _, o := range objs {
		switch {
		case o.Service != nil:
			checkService(o.Service, ws, func(format string, args ...any) {
				fail(o.Source, "Service", o.Name, format, args...)
			})
		case o.PDB != nil:
			if !selects(o.PDB.Spec.Selector, ws) {
				fail(o.Source, "PodDisruptionBudget", o.Name, "selector %v matches no workload's pods", o.PDB.Spec.Selector.MatchLabels)
			}
			checkBudget(&o, objs, func(format string, args ...any) {
				fail(o.Source, "PodDisruptionBudget", o.Name, format, args...)
			})
			// The eviction API honours maxUnavailable only for pods of a
			// controller with a scale subresource.
			for _, o2 := range objs {
				if o2.DaemonSet != nil && o.PDB.Spec.MaxUnavailable != nil && selects(o.PDB.Spec.Selector, Workloads([]Object{o2})) {
					fail(o.Source, "PodDisruptionBudget", o.Name, "maxUnavailable on DaemonSet %s's pods, which the eviction API refuses", o2.Name)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// podCount is how many pods w runs: a Deployment's replicas (1 when
// unset), and for a DaemonSet 2, standing for one per node.
func podCount(objs []Object, w Workload) int {
	for _, o := range objs {
		if o.Source != w.Source {
			continue
		}
		switch {
		case o.Deployment != nil && o.Deployment.Spec.Replicas != nil:
			return int(*o.Deployment.Spec.Replicas)
		case o.DaemonSet != nil:
			return 2
		}
	}
	return 1
}

func selects(sel *metav1.LabelSelector, ws []Workload) bool {
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() {
		return false
	}
	for _, w := range ws {
		if s.Matches(labels.Set(w.Pod.Labels)) {
			return true
		}
	}
	return false
}

func checkWorkload(w Workload, configMaps, accounts map[string]bool, fail func(string, ...any)) {
	if !selects(w.Selector, []Workload{w}) {
		fail("selector does not match the pod template's labels")
	}
	spec := w.Pod.Spec
	if spec.ServiceAccountName != "" && !accounts[spec.ServiceAccountName] {
		fail("serviceAccountName %q is not among the manifests", spec.ServiceAccountName)
	}
	if sc := spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		fail("pod securityContext.runAsNonRoot must be true")
	} else if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		fail("pod securityContext.seccompProfile must be RuntimeDefault")
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
		if v.ConfigMap != nil && !configMaps[v.ConfigMap.Name] && (v.ConfigMap.Optional == nil || !*v.ConfigMap.Optional) {
			// A zones ConfigMap of the operator's own is allowed to be
			// elsewhere; every other must be shipped here.
			if v.Name != "zones" {
				fail("volume %s: ConfigMap %q is not among the manifests", v.Name, v.ConfigMap.Name)
			}
		}
	}
	var popdns *corev1.Container
	all := append(slices.Clone(spec.InitContainers), spec.Containers...)
	for i := range all {
		c := &all[i]
		if c.Name == "popdns" {
			popdns = c
		}
		for _, m := range c.VolumeMounts {
			if _, ok := volumes[m.Name]; !ok {
				fail("container %s mounts volume %s, which the pod does not have", c.Name, m.Name)
			}
		}
		checkContainerSecurity(c, fail)
		if c.Resources.Requests.Memory().IsZero() {
			fail("container %s: no memory request", c.Name)
		}
	}
	if popdns == nil {
		fail("no container named popdns")
		return
	}
	ports := map[string]corev1.Protocol{}
	for _, p := range popdns.Ports {
		ports[p.Name] = p.Protocol
	}
	for name, proto := range map[string]corev1.Protocol{"dns-udp": corev1.ProtocolUDP, "dns-tcp": corev1.ProtocolTCP, "http": corev1.ProtocolTCP} {
		if got, ok := ports[name]; !ok || got != proto {
			fail("container popdns: port %s/%s missing", name, proto)
		}
	}
	checkProbe := func(what string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil {
			fail("container popdns: %s must be an httpGet of %s", what, path)
			return
		}
		if p.HTTPGet.Path != path {
			fail("container popdns: %s asks %s, want %s", what, p.HTTPGet.Path, path)
		}
		if p.HTTPGet.Port.Type == intstr.String && ports[p.HTTPGet.Port.StrVal] == "" {
			fail("container popdns: %s names port %q, which the container lacks", what, p.HTTPGet.Port.StrVal)
		}
	}
	checkProbe("livenessProbe", popdns.LivenessProbe, "/healthz")
	checkProbe("readinessProbe", popdns.ReadinessProbe, "/readyz")
	// popdns answers /healthz as soon as its HTTP endpoint is up, before
	// the zones load: a startup probe on it holds liveness back for
	// nothing.
	if popdns.StartupProbe != nil {
		checkProbe("startupProbe", popdns.StartupProbe, "/readyz")
	}
	mounted := map[string]bool{}
	for _, m := range popdns.VolumeMounts {
		mounted[m.MountPath] = true
	}
	for _, want := range []string{"/etc/popdns/config", "/var/lib/popdns/zones", "/var/lib/popdns/state"} {
		if !mounted[want] {
			fail("container popdns: nothing mounted at %s", want)
		}
	}
}

func checkContainerSecurity(c *corev1.Container, fail func(string, ...any)) {
	sc := c.SecurityContext
	if sc == nil {
		fail("container %s: no securityContext", c.Name)
		return
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		fail("container %s: readOnlyRootFilesystem must be true", c.Name)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		fail("container %s: allowPrivilegeEscalation must be false", c.Name)
	}
	if sc.Privileged != nil && *sc.Privileged {
		fail("container %s: privileged", c.Name)
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		fail("container %s: capabilities must drop ALL", c.Name)
		return
	}
	for _, add := range sc.Capabilities.Add {
		if add != "NET_BIND_SERVICE" || c.Name != "popdns" {
			fail("container %s: adds capability %s (only popdns may add NET_BIND_SERVICE)", c.Name, add)
		}
	}
}

func checkService(s *corev1.Service, ws []Workload, fail func(string, ...any)) {
	sel := &metav1.LabelSelector{MatchLabels: s.Spec.Selector}
	var target *Workload
	for i := range ws {
		if selects(sel, ws[i:i+1]) {
			target = &ws[i]
		}
	}
	if target == nil {
		fail("selector %v matches no workload's pods", s.Spec.Selector)
		return
	}
	checkPreStop(s, target, fail)
	var ports []corev1.ContainerPort
	for _, c := range target.Pod.Spec.Containers {
		ports = append(ports, c.Ports...)
	}
	for _, sp := range s.Spec.Ports {
		found := false
		for _, cp := range ports {
			byName := sp.TargetPort.Type == intstr.String && sp.TargetPort.StrVal == cp.Name
			byNumber := sp.TargetPort.Type == intstr.Int && sp.TargetPort.IntVal == cp.ContainerPort
			if (byName || byNumber) && protocol(sp.Protocol) == protocol(cp.Protocol) {
				found = true
			}
		}
		if !found {
			fail("port %s: targetPort %s/%s is no port of %s's containers", sp.Name, sp.TargetPort.String(), protocol(sp.Protocol), target.Name)
		}
	}
}

func protocol(p corev1.Protocol) string {
	if p == "" {
		return string(corev1.ProtocolTCP)
	}
	return strings.ToUpper(string(p))
}
