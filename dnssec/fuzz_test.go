package dnssec

import (
	"errors"
	"testing"
	"testing/fstest"
)

// FuzzReadKeys feeds ReadKeys a key pair's two files as they come: it must
// never panic, and it must return keys or errors, each a *KeyFileError.
// A key it returns must sign.
func FuzzReadKeys(f *testing.F) {
	const name = "Kexample.test.+015+"
	// A CSK as popdns and BIND write it (the tag in its file name is
	// the fuzzer's to vary).
	f.Add("34259", "; This is a key-signing key, keyid 34259, for example.test.\n"+
		"; Created: 20261201210000 (Tue Dec  1 21:00:00 2026)\n"+
		"example.test. 3600 IN DNSKEY 257 3 15 A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=\n",
		"Private-key-format: v1.3\nAlgorithm: 15 (ED25519)\nPrivateKey: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"+
			"Created: 20261201210000\nPublish: 20261201210000\nActivate: 20261201220000\n")
	// A record spread over lines with parentheses, no TTL, and times BIND's
	// key manager writes that popdns ignores.
	f.Add("34259", "example.test. IN DNSKEY ( 257 3 15\n A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg= ) ; a comment\n",
		"Private-key-format: v1.2\nAlgorithm: 15\nPrivateKey: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\nDSPublish: 20261203213231\nLifetime: 0\n")
	// A zone-file directive, and a private file with a bad time and a
	// repeated field.
	f.Add("00001", "$TTL 60\n$ORIGIN example.test.\n@ DNSKEY 256 3 15 AAAA\n",
		"Private-key-format: v1.3\nAlgorithm: 15 (ED25519)\nPrivateKey: AAAA\nActivate: 2026\nActivate: 20261301000000\n")
	// An ECDSA public key in an Ed25519 file name, and an empty private file.
	f.Add("12345", "example.test. 3600 IN DNSKEY 257 3 13 +20H14qr46e4jRvZQFhLjWHknGwvyBbBLPfAhEsNKYp58XF0UBj39Roy gQYdJv9m5hp2/8HCvsrZUth97Mn9cQ==\n", "")
	// An $INCLUDE, which a key file may not use.
	f.Add("34259", "$INCLUDE /etc/passwd\n", "PrivateKey:\n:\n;;\n")
	f.Fuzz(func(t *testing.T, tag, key, private string) {
		fsys := fstest.MapFS{
			"k/" + name + tag + ".key":     {Data: []byte(key)},
			"k/" + name + tag + ".private": {Data: []byte(private)},
		}
		keys, err := ReadKeys(fsys, "k")
		if err != nil {
			if keys != nil {
				t.Fatalf("keys %v with error %v", keys, err)
			}
			var kf *KeyFileError
			if !errors.As(err, &kf) {
				t.Fatalf("error %v is no *KeyFileError", err)
			}
			return
		}
		for _, k := range keys {
			if k.Signer == nil || k.DNSKEY == nil || k.Tag != k.DNSKEY.KeyTag() {
				t.Fatalf("key %+v", k)
			}
			checkSigns(t, k)
		}
	})
}

// TestFuzzSeedReads keeps FuzzReadKeys's first seed a key that reads, so
// that the fuzzer starts from the path that succeeds.
func TestFuzzSeedReads(t *testing.T) {
	fsys := fstest.MapFS{
		"Kexample.test.+015+34259.key": {Data: []byte("example.test. 3600 IN DNSKEY 257 3 15 A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=\n")},
		"Kexample.test.+015+34259.private": {Data: []byte("Private-key-format: v1.3\nAlgorithm: 15 (ED25519)\n" +
			"PrivateKey: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n")},
	}
	if _, err := ReadKeys(fsys, "."); err != nil {
		t.Fatal(err)
	}
}
