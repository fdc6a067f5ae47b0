package validate

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	sigsyaml "sigs.k8s.io/yaml"
)

// PopdnsCheck lays out the popdns container's files under root (Layout) and
// runs `popdns check` on the config: the config the manifests ship must be
// one popdns accepts, with the zones beside it.
func PopdnsCheck(popdns, root, geoCity, geoASN string, objs []Object) ([]byte, error) {
	checked, shipped, err := Layout(root, geoCity, geoASN, objs)
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(popdns, "check", checked).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("popdns check of %s (as shipped in %s): %w\n%s", checked, shipped, err, out)
	}
	return out, nil
}

// Layout writes the popdns container's files under root as the kubelet
// would lay them out: each ConfigMap behind its ..data link, the token
// files, the GeoIP files popdns.yaml names (copied from geoCity and
// geoASN), empty directories for the other volumes. It returns the path of
// a copy of popdns.yaml with its paths under /etc/popdns and
// /var/lib/popdns moved under root, and the path popdns.yaml has in the
// pod.
func Layout(root, geoCity, geoASN string, objs []Object) (checked, shipped string, err error) {
	ws := Workloads(objs)
	if len(ws) != 1 {
		return "", "", fmt.Errorf("want one workload, got %d", len(ws))
	}
	spec := ws[0].Pod.Spec
	configMaps := map[string]map[string]string{}
	for _, o := range objs {
		if o.ConfigMap != nil {
			configMaps[o.Name] = o.ConfigMap.Data
		}
	}
	volumes := map[string]string{} // volume name → ConfigMap name ("" if another kind)
	for _, v := range spec.Volumes {
		if v.ConfigMap != nil {
			volumes[v.Name] = v.ConfigMap.Name
		} else {
			volumes[v.Name] = ""
		}
	}
	var config string
	for _, c := range spec.Containers {
		if c.Name != "popdns" {
			continue
		}
		for _, m := range c.VolumeMounts {
			dir := filepath.Join(root, m.MountPath)
			cm, isCM := volumes[m.Name]
			data, shipped := configMaps[cm]
			switch {
			case isCM && cm != "" && shipped:
				if err := writeConfigMap(dir, data); err != nil {
					return "", "", err
				}
				if _, ok := data["popdns.yaml"]; ok {
					config = filepath.Join(m.MountPath, "popdns.yaml")
				}
			default:
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return "", "", err
				}
			}
		}
	}
	if config == "" {
		return "", "", fmt.Errorf("no ConfigMap with popdns.yaml is mounted in the popdns container")
	}
	text, err := os.ReadFile(filepath.Join(root, config))
	if err != nil {
		return "", "", err
	}
	var cfg struct {
		ReadToken  string `json:"read_token_file"`
		AdminToken string `json:"admin_token_file"`
		GeoIP      struct {
			City string `json:"city"`
			ASN  string `json:"asn"`
		} `json:"geoip"`
		Cluster struct {
			Creds string `json:"creds"`
		} `json:"cluster"`
	}
	if err := sigsyaml.Unmarshal(text, &cfg); err != nil {
		return "", "", fmt.Errorf("%s: %w", config, err)
	}
	for _, f := range []struct {
		path string
		data []byte
		from string
	}{
		{cfg.ReadToken, []byte("k8s-validate-read-token-0123456789\n"), ""},
		{cfg.AdminToken, []byte("k8s-validate-admin-token-0123456789\n"), ""},
		{cfg.GeoIP.City, nil, geoCity},
		{cfg.GeoIP.ASN, nil, geoASN},
		{cfg.Cluster.Creds, []byte("not read by popdns check\n"), ""},
	} {
		if f.path == "" {
			continue
		}
		data := f.data
		if f.from != "" {
			if data, err = os.ReadFile(f.from); err != nil {
				return "", "", err
			}
		}
		p := filepath.Join(root, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", "", err
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			return "", "", err
		}
	}
	moved := strings.NewReplacer(
		" /etc/popdns/", " "+filepath.Join(root, "etc/popdns")+"/",
		" /var/lib/popdns/", " "+filepath.Join(root, "var/lib/popdns")+"/",
	).Replace(string(text))
	// Beside the mounted one, which is read-only in the pod and stays as
	// shipped.
	checked = filepath.Join(root, "popdns-checked.yaml")
	if err := os.WriteFile(checked, []byte(moved), 0o644); err != nil {
		return "", "", err
	}
	return checked, config, nil
}

// writeConfigMap writes data into dir the way the kubelet does: the files
// in a timestamped directory, ..data a link to it, and each name a link
// through ..data, which is what popdns's watcher expects to see swapped.
func writeConfigMap(dir string, data map[string]string) error {
	real := filepath.Join(dir, "..2026_01_01_00_00_00.000000001")
	if err := os.MkdirAll(real, 0o755); err != nil {
		return err
	}
	if err := os.Symlink(filepath.Base(real), filepath.Join(dir, "..data")); err != nil {
		return err
	}
	for name, text := range data {
		if strings.ContainsAny(name, "/\\") || strings.HasPrefix(name, ".") {
			return fmt.Errorf("ConfigMap key %q is not a plain file name", name)
		}
		if err := os.WriteFile(filepath.Join(real, name), bytes.Clone([]byte(text)), 0o644); err != nil {
			return err
		}
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}
