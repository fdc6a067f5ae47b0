package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnssec"
	"github.com/popdns/popdns/zones"
)

// dnssecUsage is the usage of popdns dnssec: its commands.
const dnssecUsage = `usage:
  popdns dnssec keygen [-dir DIR] [-algorithm ed25519|ecdsap256] [-ksk-zsk | -role ROLE] [-ttl SECONDS] [-publish WHEN] [-activate WHEN] ZONE
                                       write a new CSK (or a KSK and a ZSK) as BIND key files, print the DS
  popdns dnssec settime [-dir DIR] -key TAG [-publish WHEN] [-activate WHEN] [-inactive WHEN] [-delete WHEN]
                        [-sync-publish WHEN] [-sync-delete WHEN]
                                       change a key's times, for a rollover
  popdns dnssec ds {-keys DIR ZONE | -config FILE ZONE | -zone-file FILE} [-all]
                                       print the DS records to give the parent zone
  popdns dnssec keys -keys DIR ZONE    list a zone's keys, their roles, states and times

WHEN is now, a time from now (+1h, +2d, +1w, +1d12h; units s, mi, h, d, w), a
UTC time YYYYMMDDHHMMSS as BIND writes them, or none (unset).
popdns help dnssec COMMAND prints a command's flags.
`

// runDNSSEC runs popdns dnssec: the making and handling of a zone's key
// files, which the server reads and BIND's and Knot's tools read too.
func runDNSSEC(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("popdns dnssec", flag.ContinueOnError)
	fl.Usage = func() { fmt.Fprint(fl.Output(), dnssecUsage) }
	if len(args) == 0 {
		return &usageError{fl: fl, err: errors.New("want a command: keygen, settime, ds or keys")}
	}
	now := time.Now().UTC().Truncate(time.Second)
	switch args[0] {
	case "keygen":
		return runKeygen(args[1:], now, stdout, stderr)
	case "settime":
		return runSettime(args[1:], now, stdout, stderr)
	case "ds":
		return runDS(args[1:], now, stdout, stderr)
	case "keys":
		return runKeys(args[1:], now, stdout, stderr)
	}
	if _, err := parseArgs(fl, args); err != nil {
		return err // -h, or a flag that is not one
	}
	return &usageError{fl: fl, err: fmt.Errorf("unknown command %q: want keygen, settime, ds or keys", args[0])}
}

// dnssecHelp prints the usage of popdns dnssec, or of one of its
// commands, for popdns help.
func dnssecHelp(args []string, stdout, stderr io.Writer) error {
	switch {
	case len(args) == 0:
		return runDNSSEC([]string{"-h"}, stdout, stderr)
	case len(args) > 1 || !slices.Contains([]string{"keygen", "settime", "ds", "keys"}, args[0]):
		fl := flag.NewFlagSet("popdns help dnssec", flag.ContinueOnError)
		fl.Usage = func() { fmt.Fprintln(fl.Output(), "usage: popdns help dnssec [keygen|settime|ds|keys]") }
		return &usageError{fl: fl, err: fmt.Errorf("unknown command %q", strings.Join(args, " "))}
	}
	return runDNSSEC([]string{args[0], "-h"}, stdout, stderr)
}

func runKeygen(args []string, now time.Time, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("popdns dnssec keygen", flag.ContinueOnError)
	fl.Usage = func() {
		fmt.Fprintln(fl.Output(), `usage: popdns dnssec keygen [flags] ZONE
Writes a new combined signing key (CSK, flags 257) for ZONE into DIR, or with
-ksk-zsk a key signing key (257) and a zone signing key (256), or with -role
one key of that role (a rollover's new key), as BIND's files
K<zone>.+<algorithm>+<tag>.key and .private. Prints the files and the DS
records to give the parent zone. Never overwrites a file.`)
		fl.PrintDefaults()
	}
	dir := fl.String("dir", ".", "the zone's key `directory` (its dnssec.keys)")
	algName := fl.String("algorithm", "ed25519", "ed25519 (15) or ecdsap256 (13)")
	kskZSK := fl.Bool("ksk-zsk", false, "write a KSK and a ZSK instead of one CSK")
	role := fl.String("role", "csk", "the one key's `ROLE`: csk, ksk (flags 257 both) or zsk (256)")
	ttl := fl.Uint("ttl", 3600, "the DNSKEY record's TTL in `seconds`")
	publishS := fl.String("publish", "now", "`WHEN` the key enters the DNSKEY RRset")
	activateS := fl.String("activate", "now", "`WHEN` the key starts signing")
	rest, err := parseArgs(fl, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return &usageError{fl: fl, err: fmt.Errorf("want ZONE, got %d arguments", len(rest))}
	}
	zone, err := zoneArg(rest[0])
	if err != nil {
		return &usageError{fl: fl, err: err}
	}
	alg, ok := dnssec.ParseAlgorithm(*algName)
	if !ok {
		return &usageError{fl: fl, err: fmt.Errorf("-algorithm %q: want ed25519 or ecdsap256", *algName)}
	}
	if *ttl > 1<<31-1 {
		return &usageError{fl: fl, err: fmt.Errorf("-ttl %d: over 2147483647 (RFC 2181 §8)", *ttl)}
	}
	var timing dnssec.Timing
	for _, w := range []struct {
		flag, value string
		at          *time.Time
	}{{"publish", *publishS, &timing.Publish}, {"activate", *activateS, &timing.Activate}} {
		if *w.at, err = parseWhen(w.value, now); err != nil {
			return &usageError{fl: fl, err: fmt.Errorf("-%s: %w", w.flag, err)}
		}
	}
	if err := checkTiming(timing); err != nil {
		return err
	}
	if st, err := os.Stat(*dir); err != nil {
		return err
	} else if !st.IsDir() {
		return fmt.Errorf("%s: not a directory", *dir)
	}
	var flags []uint16
	var roles []string
	switch {
	case *kskZSK && *role != "csk":
		return &usageError{fl: fl, err: errors.New("-ksk-zsk and -role: one or the other")}
	case *kskZSK:
		flags, roles = []uint16{dns.ZONE | dns.SEP, dns.ZONE}, []string{"KSK", "ZSK"}
	case *role == "csk" || *role == "ksk":
		flags, roles = []uint16{dns.ZONE | dns.SEP}, []string{strings.ToUpper(*role)}
	case *role == "zsk":
		flags, roles = []uint16{dns.ZONE}, []string{"ZSK"}
	default:
		return &usageError{fl: fl, err: fmt.Errorf("-role %q: want csk, ksk or zsk", *role)}
	}
	var made []*dnssec.Key
	for i, f := range flags {
		k, err := newKey(*dir, zone, alg, f, uint32(*ttl), now, made)
		if err != nil {
			return err
		}
		k.Timing = timing
		kf, pf, err := dnssec.WriteKeyFiles(*dir, k, now)
		if err != nil {
			return err
		}
		k.File = kf
		made = append(made, k)
		fmt.Fprintf(stdout, "; %s %d (%s): %s %s\n", roles[i], k.Tag, dnssec.AlgorithmName(alg), kf, pf)
	}
	fmt.Fprintf(stdout, "; %s\n", timingSummary(timing))
	for _, k := range made {
		if k.IsKSK() {
			fmt.Fprintf(stdout, "; the DS record to give the parent of %s:\n%s\n", zone, dsLine(dnssec.DS(k, 0)))
		}
	}
	return nil
}

// newKey makes a key whose tag no key file in dir and no key in made has,
// as BIND's dnssec-keygen avoids them: two keys of a zone with one tag
// cost validators a try of each.
func newKey(dir, zone string, alg uint8, flags uint16, ttl uint32, now time.Time, made []*dnssec.Key) (*dnssec.Key, error) {
	for range 20 {
		k, err := dnssec.GenerateKey(zone, alg, flags, ttl, now)
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(made, func(m *dnssec.Key) bool { return m.Tag == k.Tag }) {
			continue
		}
		taken, err := filepath.Glob(filepath.Join(dir, fmt.Sprintf("K*+%05d.*", k.Tag)))
		if err != nil {
			return nil, err
		}
		if len(taken) == 0 {
			return k, nil
		}
	}
	return nil, fmt.Errorf("%s: no free key tag in 20 tries", dir)
}

func runSettime(args []string, now time.Time, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("popdns dnssec settime", flag.ContinueOnError)
	fl.Usage = func() {
		fmt.Fprintln(fl.Output(), `usage: popdns dnssec settime [-dir DIR] -key TAG [flags]
Changes the times of the key TAG in DIR, in its .private file (and the comments
of its .key file), as BIND's dnssec-settime does; times not given stay. Each
file is replaced by a rename, so a server reloading meanwhile reads the old
file or the new one, never half of one. A reload of the zone takes the change.`)
		fl.PrintDefaults()
	}
	dir := fl.String("dir", ".", "the zone's key `directory`")
	tag := fl.String("key", "", "the `TAG` of the key (the number in its file name)")
	when := map[string]*string{}
	for _, f := range []struct{ name, usage string }{
		{"publish", "`WHEN` the key enters the DNSKEY RRset"},
		{"activate", "`WHEN` the key starts signing"},
		{"inactive", "`WHEN` the key stops signing (it stays published)"},
		{"delete", "`WHEN` the key leaves the DNSKEY RRset"},
		{"sync-publish", "`WHEN` its CDS and CDNSKEY records appear (KSK and CSK)"},
		{"sync-delete", "`WHEN` its CDS and CDNSKEY records go"},
	} {
		when[f.name] = fl.String(f.name, "", f.usage)
	}
	rest, err := parseArgs(fl, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return &usageError{fl: fl, err: fmt.Errorf("unexpected argument %q", rest[0])}
	}
	n, err := strconv.ParseUint(*tag, 10, 16)
	if err != nil {
		return &usageError{fl: fl, err: fmt.Errorf("-key %q: want the key's tag, 0 to 65535", *tag)}
	}
	matches, err := filepath.Glob(filepath.Join(*dir, fmt.Sprintf("K*.+[0-9][0-9][0-9]+%05d.key", n)))
	switch {
	case err != nil:
		return err
	case len(matches) == 0:
		return fmt.Errorf("%s: no key with tag %d (K*+%05d.key)", *dir, n, n)
	case len(matches) > 1:
		return fmt.Errorf("%s: %d keys with tag %d: %s; change one with BIND's dnssec-settime", *dir, len(matches), n, strings.Join(matches, ", "))
	}
	k, err := dnssec.ReadKeyFile(matches[0])
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitError{}
	}
	t := k.Timing
	for _, f := range []struct {
		name string
		at   *time.Time
	}{{"publish", &t.Publish}, {"activate", &t.Activate}, {"inactive", &t.Inactive}, {"delete", &t.Delete},
		{"sync-publish", &t.SyncPublish}, {"sync-delete", &t.SyncDelete}} {
		if *when[f.name] == "" {
			continue
		}
		if *f.at, err = parseWhen(*when[f.name], now); err != nil {
			return &usageError{fl: fl, err: fmt.Errorf("-%s: %w", f.name, err)}
		}
	}
	if err := checkTiming(t); err != nil {
		return fmt.Errorf("%s: %w", matches[0], err)
	}
	if err := dnssec.SetTiming(matches[0], t); err != nil {
		fmt.Fprintln(stderr, err)
		return exitError{}
	}
	fmt.Fprintf(stdout, "%s: %s\n", matches[0], timingSummary(t))
	return nil
}

func runDS(args []string, now time.Time, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("popdns dnssec ds", flag.ContinueOnError)
	fl.Usage = func() {
		fmt.Fprintln(fl.Output(), `usage: popdns dnssec ds {-keys DIR ZONE | -config FILE ZONE | -zone-file FILE} [-all]
Prints the DS records (SHA-256) of ZONE's keys with the SEP flag (KSK, CSK)
that are published now, one per line, as BIND's dnssec-dsfromkey prints them:
what to give the parent zone. With -all, of every such key in DIR, also those
not yet published (for a double-DS rollover) and those deleted.`)
		fl.PrintDefaults()
	}
	keysDir := fl.String("keys", "", "the zone's key `directory`")
	configFile := fl.String("config", "", "the configuration `file` of the server serving ZONE: its zone file's dnssec block names the key directory")
	zoneFile := fl.String("zone-file", "", "a zone `file` with a dnssec block, naming the key directory")
	all := fl.Bool("all", false, "print the DS of every KSK and CSK, published or not")
	rest, err := parseArgs(fl, args)
	if err != nil {
		return err
	}
	var zone string
	switch {
	case *zoneFile != "":
		if len(rest) > 1 {
			return &usageError{fl: fl, err: fmt.Errorf("want at most ZONE with -zone-file, got %d arguments", len(rest))}
		}
		origin, dir, err := keysDirOfFile(*zoneFile)
		if err != nil {
			return err
		}
		*keysDir, zone = dir, origin
	case *configFile != "":
		if len(rest) != 1 {
			return &usageError{fl: fl, err: fmt.Errorf("want ZONE, got %d arguments", len(rest))}
		}
		if zone, err = zoneArg(rest[0]); err != nil {
			return &usageError{fl: fl, err: err}
		}
		if *keysDir, err = keysDirOfZone(*configFile, zone); err != nil {
			return err
		}
	default:
		if zone, err = zoneAndKeys(fl, rest, *keysDir); err != nil {
			return err
		}
	}
	keys, err := readZoneKeys(*keysDir, zone)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitError{}
	}
	printed := 0
	for _, k := range keys {
		if !k.IsKSK() {
			continue
		}
		switch k.StateAt(now) {
		case dnssec.Published, dnssec.Active, dnssec.Retired:
		default:
			if !*all {
				continue
			}
		}
		fmt.Fprintln(stdout, dsLine(dnssec.DS(k, 0)))
		printed++
	}
	if printed == 0 {
		fmt.Fprintf(stderr, "%s: no published key of %s has the SEP flag (257)", *keysDir, zone)
		if !*all {
			fmt.Fprint(stderr, "; -all prints the DS of those not published now")
		}
		fmt.Fprintln(stderr)
		return exitError{}
	}
	return nil
}

func runKeys(args []string, now time.Time, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("popdns dnssec keys", flag.ContinueOnError)
	fl.Usage = func() {
		fmt.Fprintln(fl.Output(), `usage: popdns dnssec keys -keys DIR ZONE
Lists ZONE's keys in DIR: tag, role, flags, algorithm, state now and times
(UTC). Exits 1 when popdns would refuse the keys, such as when none is active.`)
		fl.PrintDefaults()
	}
	keysDir := fl.String("keys", "", "the zone's key `directory`")
	rest, err := parseArgs(fl, args)
	if err != nil {
		return err
	}
	zone, err := zoneAndKeys(fl, rest, *keysDir)
	if err != nil {
		return err
	}
	keys, err := readZoneKeys(*keysDir, zone)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitError{}
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TAG\tROLE\tFLAGS\tALGORITHM\tSTATE\tPUBLISH\tACTIVATE\tINACTIVE\tDELETE\tSYNC-PUBLISH\tSYNC-DELETE\tFILE")
	for _, k := range keys {
		t := k.Timing
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.Tag, dnssec.Role(k, keys), k.DNSKEY.Flags,
			dnssec.AlgorithmName(k.DNSKEY.Algorithm), k.StateAt(now), when(t.Publish), when(t.Activate), when(t.Inactive),
			when(t.Delete), when(t.SyncPublish), when(t.SyncDelete), k.File)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if _, err := dnssec.NewKeySet(zone, keys[0].DNSKEY.Algorithm, keys, now); err != nil {
		fmt.Fprintf(stderr, "%s: popdns would refuse these keys now: %v\n", *keysDir, err)
		return exitError{}
	}
	return nil
}

// zoneAndKeys checks the arguments of ds and keys: ZONE, and -keys DIR.
func zoneAndKeys(fl *flag.FlagSet, rest []string, keysDir string) (string, error) {
	if len(rest) != 1 {
		return "", &usageError{fl: fl, err: fmt.Errorf("want ZONE, got %d arguments", len(rest))}
	}
	if keysDir == "" {
		return "", &usageError{fl: fl, err: errors.New("-keys DIR missing: the zone's key directory")}
	}
	zone, err := zoneArg(rest[0])
	if err != nil {
		return "", &usageError{fl: fl, err: err}
	}
	return zone, nil
}

// readZoneKeys reads zone's keys in dir. Keys of other zones there are
// left alone, as the server does: several zones may share a directory.
func readZoneKeys(dir, zone string) ([]*dnssec.Key, error) {
	keys, err := dnssec.ReadKeyDir(dir)
	if err != nil {
		return nil, err
	}
	mine := dnssec.KeysOf(keys, zone)
	if len(mine) == 0 {
		return nil, fmt.Errorf("%s: no key of %s among its %d keys", dir, zone, len(keys))
	}
	return mine, nil
}

// keysDirOfFile reads a zone file's origin and the key directory its
// dnssec block names.
func keysDirOfFile(path string) (origin, dir string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	origin, dir, ok, err := zones.KeysDirOf(path, data)
	if err != nil {
		return "", "", err
	}
	if !ok {
		return "", "", fmt.Errorf("%s: no dnssec block: the zone is not signed", path)
	}
	return origin, dir, nil
}

// keysDirOfZone finds zone's file in the zone directory of the
// configuration file cfgFile and the key directory its dnssec block names.
func keysDirOfZone(cfgFile, zone string) (string, error) {
	cfg, err := loadConfigFile(cfgFile)
	if err != nil {
		return "", err
	}
	entries, err := os.ReadDir(cfg.zonesDir)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if e.IsDir() || !zones.IsZoneFile(e.Name()) {
			continue
		}
		path := filepath.Join(cfg.zonesDir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			return "", err
		}
		origin, dir, ok, err := zones.KeysDirOf(path, data)
		if err != nil || origin != zone {
			continue
		}
		if !ok {
			return "", fmt.Errorf("%s: zone %s has no dnssec block: it is not signed", path, zone)
		}
		return dir, nil
	}
	return "", fmt.Errorf("%s: no zone file in %s has origin %s", cfgFile, cfg.zonesDir, zone)
}

// zoneArg reads a zone's name as a person types it, to a lowercase FQDN.
func zoneArg(s string) (string, error) {
	if _, ok := dns.IsDomainName(s); !ok || s == "" {
		return "", fmt.Errorf("ZONE %q is not a domain name", s)
	}
	return dns.CanonicalName(s), nil
}

// parseWhen reads a time as the key commands take it, relative to now:
// "now", "none" (the zero time: unset), an offset such as +2d or -1h30mi,
// or a UTC time YYYYMMDDHHMMSS. It says "mi" for minutes, as BIND does,
// and refuses "m", which BIND reads as months.
func parseWhen(s string, now time.Time) (time.Time, error) {
	switch {
	case s == "now":
		return now, nil
	case s == "none":
		return time.Time{}, nil
	case len(s) == 14 && strings.Trim(s, "0123456789") == "":
		t, err := time.ParseInLocation("20060102150405", s, time.UTC)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not a time YYYYMMDDHHMMSS", s)
		}
		return t, nil
	case s != "" && (s[0] == '+' || s[0] == '-'):
		d, err := parseOffset(s[1:])
		if err != nil {
			return time.Time{}, fmt.Errorf("%q: %w", s, err)
		}
		if s[0] == '-' {
			d = -d
		}
		return now.Add(d), nil
	}
	// As keygen, settime and keys print times: RFC 3339.
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q: want now, none, an offset such as +2d, a UTC time YYYYMMDDHHMMSS, or RFC 3339 as keygen prints", s)
}

// parseOffset reads numbers with units: s, mi, h, d, w.
func parseOffset(s string) (time.Duration, error) {
	units := map[string]time.Duration{"s": time.Second, "mi": time.Minute, "h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour}
	var total time.Duration
	if s == "" {
		return 0, errors.New("no offset after the sign")
	}
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		j := i
		for j < len(s) && (s[j] < '0' || s[j] > '9') {
			j++
		}
		n, err := strconv.ParseInt(s[:i], 10, 32)
		if err != nil {
			return 0, errors.New("want a number before each unit")
		}
		unit, ok := units[s[i:j]]
		if !ok {
			return 0, fmt.Errorf("unit %q: want s, mi (minutes), h, d or w", s[i:j])
		}
		const limit = 100 * 365 * 24 * time.Hour
		if n > int64(limit/unit) || total+time.Duration(n)*unit > limit {
			return 0, errors.New("over 100 years")
		}
		total += time.Duration(n) * unit
		s = s[j:]
	}
	return total, nil
}

// checkTiming refuses times out of order: a key that signs before it is
// published, or leaves before it stops signing, breaks validation.
func checkTiming(t dnssec.Timing) error {
	for _, p := range []struct {
		a, b   time.Time
		aName  string
		bName  string
		reason string
	}{
		{t.Publish, t.Activate, "publish", "activate", "its signatures could not be validated until its DNSKEY is published"},
		{t.Activate, t.Inactive, "activate", "inactive", ""},
		{t.Inactive, t.Delete, "inactive", "delete", "its signatures could not be validated once its DNSKEY is gone"},
		{t.Publish, t.Delete, "publish", "delete", ""},
		{t.SyncPublish, t.SyncDelete, "sync-publish", "sync-delete", ""},
	} {
		if !p.a.IsZero() && !p.b.IsZero() && p.b.Before(p.a) {
			msg := fmt.Sprintf("%s %s is before %s %s", p.bName, when(p.b), p.aName, when(p.a))
			if p.reason != "" {
				msg += ": " + p.reason
			}
			return errors.New(msg)
		}
	}
	return nil
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func timingSummary(t dnssec.Timing) string {
	var parts []string
	for _, p := range []struct {
		name string
		at   time.Time
	}{{"publish", t.Publish}, {"activate", t.Activate}, {"inactive", t.Inactive}, {"delete", t.Delete},
		{"sync-publish", t.SyncPublish}, {"sync-delete", t.SyncDelete}} {
		if !p.at.IsZero() {
			parts = append(parts, p.name+" "+when(p.at))
		}
	}
	if len(parts) == 0 {
		return "no times set: published and active from the start"
	}
	return strings.Join(parts, ", ")
}

// dsLine is a DS record as BIND's dnssec-dsfromkey prints it, without a
// TTL, ready to paste at a registrar or into the parent zone.
func dsLine(ds *dns.DS) string {
	return fmt.Sprintf("%s IN DS %d %d %d %s", ds.Hdr.Name, ds.KeyTag, ds.Algorithm, ds.DigestType, ds.Digest)
}
