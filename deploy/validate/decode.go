package validate

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	sigsyaml "sigs.k8s.io/yaml"
)

// Object is one decoded Kubernetes object of a kind popdns's manifests use.
// Exactly one of the pointers is set, the one of Kind.
type Object struct {
	Source string // where it came from, for errors: file and document number
	Kind   string
	Name   string

	Deployment     *appsv1.Deployment
	DaemonSet      *appsv1.DaemonSet
	Service        *corev1.Service
	ConfigMap      *corev1.ConfigMap
	ServiceAccount *corev1.ServiceAccount
	PDB            *policyv1.PodDisruptionBudget
}

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
}

// Decode splits a YAML stream into documents and decodes each strictly into
// the type its apiVersion and kind name. source names the stream in errors.
// An empty document (a template that rendered nothing) is skipped; a kind
// not listed here is an error, so that a typo in kind or apiVersion is not
// waved through.
func Decode(source string, data []byte) ([]Object, error) {
	var objs []Object
	var errs []error
	r := yaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for n := 1; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", source, n, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		o, err := decodeOne(doc)
		src := fmt.Sprintf("%s: document %d", source, n)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", src, err))
			continue
		}
		o.Source = src
		objs = append(objs, o)
	}
	return objs, errors.Join(errs...)
}

func decodeOne(doc []byte) (Object, error) {
	var tm typeMeta
	if err := sigsyaml.Unmarshal(doc, &tm); err != nil {
		return Object{}, err
	}
	o := Object{Kind: tm.Kind}
	var into any
	var name func() string
	switch tm.APIVersion + " " + tm.Kind {
	case "apps/v1 Deployment":
		o.Deployment = &appsv1.Deployment{}
		into, name = o.Deployment, func() string { return o.Deployment.Name }
	case "apps/v1 DaemonSet":
		o.DaemonSet = &appsv1.DaemonSet{}
		into, name = o.DaemonSet, func() string { return o.DaemonSet.Name }
	case "v1 Service":
		o.Service = &corev1.Service{}
		into, name = o.Service, func() string { return o.Service.Name }
	case "v1 ConfigMap":
		o.ConfigMap = &corev1.ConfigMap{}
		into, name = o.ConfigMap, func() string { return o.ConfigMap.Name }
	case "v1 ServiceAccount":
		o.ServiceAccount = &corev1.ServiceAccount{}
		into, name = o.ServiceAccount, func() string { return o.ServiceAccount.Name }
	case "policy/v1 PodDisruptionBudget":
		o.PDB = &policyv1.PodDisruptionBudget{}
		into, name = o.PDB, func() string { return o.PDB.Name }
	default:
		return Object{}, fmt.Errorf("apiVersion %q kind %q: not a kind these manifests use", tm.APIVersion, tm.Kind)
	}
	// UnmarshalStrict: an unknown field or a duplicate key is an error,
	// and a value of the wrong type always is.
	if err := sigsyaml.UnmarshalStrict(doc, into); err != nil {
		return Object{}, fmt.Errorf("%s %s: %w", tm.Kind, tm.Metadata.Name, err)
	}
	o.Name = name()
	if o.Name == "" {
		return Object{}, fmt.Errorf("%s: metadata.name is empty", tm.Kind)
	}
	return o, nil
}

// stripComments drops whole-line comments, so that a document of only
// comments (helm's "# Source:" header above nothing) counts as empty.
func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, line := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.Bytes()
}
