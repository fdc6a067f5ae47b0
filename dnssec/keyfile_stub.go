package dnssec

import (
	"crypto"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/miekg/dns"
)

// ReadKeys is a stand-in until the key-file reader lands.
func ReadKeys(fsys fs.FS, dir string) ([]*Key, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var keys []*Key
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "K") || !strings.HasSuffix(e.Name(), ".key") {
			continue
		}
		file := path.Join(dir, e.Name())
		data, err := fs.ReadFile(fsys, file)
		if err != nil {
			return nil, err
		}
		var rr dns.RR
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, ";") || strings.TrimSpace(line) == "" {
				continue
			}
			if rr, err = dns.NewRR(line); err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
		}
		k, ok := rr.(*dns.DNSKEY)
		if !ok {
			return nil, fmt.Errorf("%s: no DNSKEY", file)
		}
		k.Hdr.Name = strings.ToLower(k.Hdr.Name)
		pf := strings.TrimSuffix(file, ".key") + ".private"
		f, err := fsys.Open(pf)
		if err != nil {
			return nil, err
		}
		priv, err := k.ReadPrivateKey(f, pf)
		f.Close()
		if err != nil {
			return nil, err
		}
		keys = append(keys, &Key{DNSKEY: k, Signer: priv.(crypto.Signer), Tag: k.KeyTag(), File: file})
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no key files", dir)
	}
	return keys, nil
}
