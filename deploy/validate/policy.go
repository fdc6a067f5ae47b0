package validate

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	sigsyaml "sigs.k8s.io/yaml"
)

// popdnsConfig is what the policy checks read of the popdns.yaml a
// workload mounts.
type popdnsConfig struct {
	ShutdownGrace  string         `json:"shutdown_grace"`
	AdminTokenFile string         `json:"admin_token_file"`
	Cluster        map[string]any `json:"cluster"`
}

// workloadConfig finds the popdns.yaml of the ConfigMap the popdns
// container mounts; found is false when none is among objs.
func workloadConfig(w Workload, objs []Object) (cfg popdnsConfig, found bool, err error) {
	data := map[string]map[string]string{}
	for _, o := range objs {
		if o.ConfigMap != nil {
			data[o.Name] = o.ConfigMap.Data
		}
	}
	volumes := map[string]string{}
	for _, v := range w.Pod.Spec.Volumes {
		if v.ConfigMap != nil {
			volumes[v.Name] = v.ConfigMap.Name
		}
	}
	for _, c := range w.Pod.Spec.Containers {
		if c.Name != "popdns" {
			continue
		}
		for _, m := range c.VolumeMounts {
			text, ok := data[volumes[m.Name]]["popdns.yaml"]
			if !ok {
				continue
			}
			// Lenient: popdns check judges the rest of the file.
			if err := sigsyaml.Unmarshal([]byte(text), &cfg); err != nil {
				return cfg, true, fmt.Errorf("ConfigMap %s: popdns.yaml: %w", volumes[m.Name], err)
			}
			return cfg, true, nil
		}
	}
	return cfg, false, nil
}

// minPreStopBehindLocalLB is the least preStop pause of pods behind a
// LoadBalancer Service with externalTrafficPolicy: Local. The load balancer
// learns that a node's last pod is going only from the node's health check
// port failing, after its own interval times its unhealthy threshold (about
// 20-25 s with the usual providers' defaults, docs/kubernetes.md); until
// then it sends that node queries, which a pod that stopped answering
// would drop.
const minPreStopBehindLocalLB = 20 * time.Second

// preStopSleep is the popdns container's preStop sleep, 0 without one.
func preStopSleep(spec corev1.PodSpec) time.Duration {
	for _, c := range spec.Containers {
		if c.Name == "popdns" && c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
			return time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
		}
	}
	return 0
}

// checkShutdown: the kubelet kills the pod terminationGracePeriodSeconds
// after it starts stopping it, preStop included, so the grace must hold
// the preStop sleep and popdns's shutdown_grace, or the queries popdns
// has read are cut off unanswered.
func checkShutdown(w Workload, objs []Object, fail func(string, ...any)) {
	cfg, found, err := workloadConfig(w, objs)
	if err != nil {
		fail("%v", err)
		return
	}
	if !found {
		return
	}
	grace := 5 * time.Second
	if cfg.ShutdownGrace != "" {
		if grace, err = time.ParseDuration(cfg.ShutdownGrace); err != nil {
			fail("popdns.yaml: shutdown_grace: %v", err)
			return
		}
	}
	term := 30 * time.Second
	if s := w.Pod.Spec.TerminationGracePeriodSeconds; s != nil {
		term = time.Duration(*s) * time.Second
	}
	if pre := preStopSleep(w.Pod.Spec); term <= pre+grace {
		fail("terminationGracePeriodSeconds %v is not more than the preStop sleep %v plus shutdown_grace %v: popdns is killed before it has answered what it read", term.Seconds(), pre, grace)
	}
}

// checkPreStop: pods behind a LoadBalancer with externalTrafficPolicy:
// Local keep answering while the load balancer notices they are going.
func checkPreStop(s *corev1.Service, target *Workload, fail func(string, ...any)) {
	if s.Spec.Type != corev1.ServiceTypeLoadBalancer || s.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
		return
	}
	if pre := preStopSleep(target.Pod.Spec); pre < minPreStopBehindLocalLB {
		fail("LoadBalancer with externalTrafficPolicy: Local in front of %s, whose popdns preStop sleep is %v: at least %v, or the load balancer still sends a node's queries to its last pod after that pod stopped answering", target.Name, pre, minPreStopBehindLocalLB)
	}
}

// checkAdminAPI: without cluster, each popdns keeps its own overrides, and
// the admin API reached through a Service is one pod picked at random: a
// drain would apply to that pod only, and the others would go on sending
// clients to the PoP. More than one pod with the admin API needs cluster,
// which shares the overrides over NATS.
func checkAdminAPI(w Workload, pods int, objs []Object, fail func(string, ...any)) {
	cfg, found, err := workloadConfig(w, objs)
	if err != nil || !found {
		return // checkShutdown reports it
	}
	if pods > 1 && cfg.AdminTokenFile != "" && cfg.Cluster == nil {
		fail("%d pods with the admin API (admin_token_file) but no cluster: a drain through it reaches one pod and the others keep serving the PoP; set cluster, or drain through pops in popdns.yaml, which every pod applies", pods)
	}
}

// checkBudget: a PodDisruptionBudget over a Deployment must leave an
// eviction possible and forbid some: maxUnavailable (or replicas minus
// minAvailable) at least 1 and below the replicas. One that allows none
// hangs every node drain; one that allows all, or covers a single pod,
// protects nothing while it seems to.
func checkBudget(pdb *Object, objs []Object, fail func(string, ...any)) {
	for _, o := range objs {
		if o.Deployment == nil || !selects(pdb.PDB.Spec.Selector, Workloads([]Object{o})) {
			continue
		}
		replicas := 1
		if r := o.Deployment.Spec.Replicas; r != nil {
			replicas = int(*r)
		}
		if replicas < 2 {
			fail("a budget over Deployment %s's %d replica protects nothing (a drain must evict it all the same): leave it out below 2 replicas", o.Name, replicas)
			continue
		}
		spec := pdb.PDB.Spec
		var allowed int
		switch {
		case spec.MaxUnavailable != nil:
			n, err := intstr.GetScaledValueFromIntOrPercent(spec.MaxUnavailable, replicas, true)
			if err != nil {
				fail("maxUnavailable: %v", err)
				continue
			}
			allowed = n
		case spec.MinAvailable != nil:
			n, err := intstr.GetScaledValueFromIntOrPercent(spec.MinAvailable, replicas, true)
			if err != nil {
				fail("minAvailable: %v", err)
				continue
			}
			allowed = replicas - n
		default:
			fail("neither maxUnavailable nor minAvailable")
			continue
		}
		switch {
		case allowed < 1:
			fail("allows no pod of Deployment %s's %d down: every node drain would hang", o.Name, replicas)
		case allowed >= replicas:
			fail("allows all %d pods of Deployment %s down at once: it protects nothing", replicas, o.Name)
		}
	}
}
