// Package validate checks popdns's deployment files: the plain Kubernetes
// manifests in deploy/kubernetes (as kustomize builds them), the Helm chart
// in deploy/helm/popdns (helm lint, and helm template with each values file
// in testdata), and the Dockerfile's build line.
//
// It is a module of its own so that the main module's go.mod stays free of
// the Kubernetes and kustomize dependencies, which only this check needs.
//
// Every object is decoded strictly into the k8s.io/api type of its kind: an
// unknown or misspelt field, or a value of the wrong type, is an error, as
// the API server's strict field validation would make it. On top, the
// checks Kubernetes itself would only make at run time or not at all: a
// selector that does not match its pod template, a mount of a volume that
// does not exist, a probe or Service naming a port the container lacks, and
// the security settings popdns must run with. The popdns.yaml and zones of
// each ConfigMap are checked with `popdns check` when POPDNS_BIN names the
// binary.
//
// The tests need helm (HELM, or on PATH); without it they skip, unless
// POPDNS_CI is set, as .ci/run's deploy step does.
package validate
